"""Boston data: file integrity, the scikit-learn split reproduced, standardization, units; layerwise +
SRL end to end through the pipeline's own training code (problems.methods.train), K-fold selection and
refit on all 354 training tracts: a fast variant on the smoke preset, the paper preset over three seeds
in `slow` (a few minutes per seed)."""
import numpy as np
import pytest
import torch

from problems import boston
from problems.methods import train


def test_csv_checksum_shape_and_published_means():
    x, y, names = boston.load_csv()
    assert x.shape == (506, 13) and y.shape == (506,)
    assert names[0] == "CRIM" and names[-1] == "LSTAT"
    np.testing.assert_allclose(x[0], [0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98])
    assert y.mean() == pytest.approx(22.532806, abs=1e-6)
    assert x[:, 5].mean() == pytest.approx(6.284634, abs=1e-6)  # RM


def test_foreign_file_is_refused(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_bytes(boston.CSV.read_bytes().replace(b"24\r\n", b"25\r\n", 1))
    with pytest.raises(ValueError, match="sha256"):
        boston.load_csv(bad)


def test_split_is_shufflesplit_of_random_state_123():
    train, test = boston.split_indices()
    assert len(train) == 354 and len(test) == 152
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(506))
    perm = np.random.RandomState(123).permutation(506)
    np.testing.assert_array_equal(test, perm[:152])
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        return
    tr, te = train_test_split(np.arange(506), test_size=0.3, random_state=123)
    np.testing.assert_array_equal(train, tr)
    np.testing.assert_array_equal(test, te)


def test_standardized_with_train_statistics_and_mse_in_original_units():
    d = boston.load(torch.float64)
    assert d.x_train.shape == (354, 13) and d.y_test.shape == (152, 1)
    torch.testing.assert_close(d.x_train.mean(0), torch.zeros(13, dtype=torch.float64), atol=1e-12, rtol=0)
    assert d.y_train.mean().item() == pytest.approx(0, abs=1e-12)
    x, y, _ = boston.load_csv()
    train, test = boston.split_indices()
    y_test = (d.y_test.squeeze(1).numpy() * d.y_std + d.y_mean)
    np.testing.assert_allclose(y_test, y[test], rtol=1e-12)
    mean_pred = torch.zeros_like(d.y_test)  # predicting the training mean
    assert d.mse_original(mean_pred, d.y_test) == pytest.approx(((y[test] - y[train].mean()) ** 2).mean(), rel=1e-12)


def layerwise_srl_run(preset: str, seed: int) -> tuple[float, float, list, object]:
    """(test MSE after the layerwise stages, after SRL) in thousand dollars², the log records and the
    trained model, exactly as ``python -m problems run boston --method layerwise_srl --preset PRESET
    --seed SEED`` trains (K-fold selection, then the refit on all 354 training tracts)."""
    torch.set_num_threads(1)
    problem = boston.BostonProblem(preset)
    data = problem.load()
    stage_one, records = [], []

    def callback(record, net):
        records.append(record)
        if record["event"] == "stage":
            assert net.n_blocks == len(stage_one) + 1  # the refit's layerwise stages, one block each
            with torch.no_grad():
                stage_one.append(problem.metrics(net(data.x_test), data)["test_mse"])

    result = train(problem, data, "layerwise_srl", seed, "cpu", callback)
    with torch.no_grad():
        return stage_one[-1], problem.metrics(result.model(data.x_test), data)["test_mse"], records, result.model


def test_smoke_preset_selects_on_folds_refits_on_all_354_tracts_and_srl_helps():
    problem = boston.BostonProblem("smoke")
    assert problem.settings["cv_folds"] == 3
    stage_one, with_srl, records, model = layerwise_srl_run("smoke", seed=0)
    selection = records[0]
    assert selection["event"] == "selection" and selection["folds"] == 3
    # the refit: exactly the chosen number of layerwise stages, then SRL with the chosen epochs
    stages = [r for r in records if r["event"] == "stage"]
    assert len(stages) == selection["stages"]
    srl = [r for r in records if r["event"] == "growth" and r.get("method") == "srl"]
    assert [r["kept_epoch"] for r in srl] == selection["srl_epochs"] == [
        sum(r["event"] == "epoch" and r["stage"] == k for r in records if r.get("phase") == "srl")
        for k in range(1, len(srl) + 1)]
    assert len(model.corrections) == len(selection["srl_epochs"])
    pooled = boston.load(torch.float64)  # the refit's training loss is over all 354 training tracts
    with torch.no_grad():
        full_loss = float(((model.base(pooled.x_train) - pooled.y_train) ** 2).mean())
    assert stages[-1]["train_loss"] == pytest.approx(full_loss, rel=1e-10)
    assert with_srl < 20.0  # least squares on this split: 28.4
    assert with_srl < stage_one


# Measured with the paper preset (5-fold CV on the 354 training tracts, refit on all 354; the test
# set never informs a decision): test MSE after the layerwise stages 17.34, 17.40, 15.73 and after SRL
# 16.22, 13.64, 14.32 for seeds 0, 1, 2 (mean 14.73; chosen layers 10, 10, 11; SRL stages 4, 3, 3).
# The fixed baseline under the same protocol: 16.94, 27.94, 32.29 (mean 25.72).
# The bar, the published fixed baseline's 11.1, is NOT reached by this honest protocol (see
# problems/boston.py: gradient boosting gets 13.0 on this split, five plain MLPs averaged at test-chosen
# epochs 11.8–12.3); the bound guards the measured level and stays below the 15.89 of the earlier
# protocol (decisions on 54 held-out tracts, training on 300).
MEAN_BOUND = 15.5


@pytest.mark.slow
def test_layerwise_srl_paper_preset_mean_over_three_seeds():
    results = [layerwise_srl_run("paper", seed)[:2] for seed in (0, 1, 2)]
    mean = np.mean([with_srl for _, with_srl in results])
    assert mean < MEAN_BOUND, results
