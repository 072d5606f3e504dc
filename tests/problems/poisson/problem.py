"""A PDE problem added the way the README says, file 2 of 2 (the ``problems/<name>.py`` of a new problem;
tests/problems/test_new_problem.py adds its registry line): noisy u at the sensors -> the source f at
the mesh nodes, targets standardized per node; its presentation (labels, figures, notes) is here."""
from problems.base import Data, Problem, Standardizer, dataset_split, read_dataset
from problems.heat import HeatProblem


class PoissonProblem(Problem):
    name = "poisson"
    kind = "field"
    presets = {"smoke": {"threads": 1, "split": (14, 4, 6), "width": 8, "n_blocks": 1, "final_blocks": 2,
                         "epochs": 4, "lr": 1e-2, "batch_size": None, "patience": 2, "min_rel_improvement": 0.0,
                         "methods": {"nas": {"n_trials": 2}}}}
    figures = ("fields", "td_scores")
    field_label, error_label, domain = "source f (nondimensional)", "|f̂ − f|", "on (0, 1)²"
    notes = "A test problem: no published values."

    def load(self, path) -> Data:
        dataset = read_dataset(path, self.name)
        data = dataset_split(self, dataset, dataset.rows("parameters"), Standardizer.fit)
        data.info["points"] = dataset.arrays["geometry/parameter_points"]
        data.info["cells"] = dataset.arrays["geometry/cells"]
        return data

    draw_field = HeatProblem.draw_field  # a P1 field on the triangulation
