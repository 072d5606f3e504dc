"""The batch scripts of results/slurm/ on a real one-node SLURM cluster (`make test-slurm`, which
starts it with tests/slurm/cluster.sh): each script submitted at smoke scale exactly as the README's
cluster section writes it (COMMANDS; the section may contain no other command), every job
COMPLETED, the sample-parallel files bit for bit the one-process files, mesh-parallel rows equal to
one process's to solver tolerance, the sweep's metrics those of an `mpirun -n 2` sweep, a
resubmitted sweep skipping every finished run, a generate job killed by scancel resumed by
resubmitting it, and a chain whose generate job fails not leaving its sweep pending.

The commands run in the repository root (the scripts' submission directory) with OUT, DATA and RUNS
pointing into a temporary folder, so the repository's own data and runs are never touched, and with
HEAT_SOURCES_DIR set to the heat sources' files (data/heat-sources, ../shared/datasets/heat-sources,
or downloaded), which sbatch passes on to the jobs.
"""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from common.errors import UserError
from pde_data import heat_sources
from tests.conftest import REPO, file_content, own_lines

pytestmark = pytest.mark.slurm

PY = os.path.join(REPO, ".venv", "bin", "python")
HEAT_BIG = "mesh_n=64 n_modes=64 prior=bilaplacian sensors=random"
SWEEP_ARGS = "--preset smoke --seeds 0 1 --problems heat --methods baseline topological"
COMMANDS = {  # what the README's cluster section shows, each run below exactly as written
    "generate": f"N_SAMPLES=3000 sbatch --nodes=1 --ntasks-per-node=2 results/slurm/generate.sbatch heat smoke {HEAT_BIG}",
    "wind": 'PRESET=smoke PROCS_PER_SAMPLE=2 MESH="[8,8,4]" N_SAMPLES=6 sbatch --nodes=1 --ntasks-per-node=2 '
            "results/slurm/wind_mesh_parallel.sbatch",
    "chain_generate": "jid=$(sbatch --parsable --kill-on-invalid-dep=yes --nodes=1 --ntasks-per-node=2 "
                      "results/slurm/generate.sbatch heat smoke)",
    "chain_sweep": 'PRESET=smoke PROBLEMS=heat METHODS="baseline topological" SEEDS="0 1" sbatch '
                   "--dependency=afterok:$jid --kill-on-invalid-dep=yes --ntasks=2 --cpus-per-task=1 "
                   "results/slurm/sweep.sbatch",
    "sweep": 'PRESET=smoke PROBLEMS=heat METHODS="baseline topological" SEEDS="0 1" sbatch --ntasks=2 '
             "--cpus-per-task=1 results/slurm/sweep.sbatch",
    "mpirun_sweep": f"scripts/mpirun -n 2 .venv/bin/python -m problems sweep {SWEEP_ARGS} --data-dir \"$DATA\" "
                    '--out-root "$RUNS"',
    "cancel": "scancel $jid",
}
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "DEADLINE"}


SUBMITTED = []  # job ids, whose logs in logs/ are removed at the end


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    if not os.environ.get("SLURM_CONF"):
        pytest.fail("no test cluster: run `make test-slurm` (tests/slurm/cluster.sh starts one)")
    try:  # the heat smoke preset reads the sources' files: found (or fetched) once, passed on by sbatch
        os.environ["HEAT_SOURCES_DIR"] = str(heat_sources.source_dir())
    except UserError as error:
        pytest.fail(str(error))
    yield tmp_path_factory.mktemp("slurm")
    known = jobs()
    for job in SUBMITTED:
        if job in known:
            Path(known[job]["StdOut"]).unlink(missing_ok=True)


def shell(command, **env):
    """Run `command` with bash in the repository root; returns its stdout (fails on a non-zero exit)."""
    result = subprocess.run(["bash", "-c", command], cwd=REPO, env={**os.environ, **{k: str(v) for k, v in env.items()}},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def jobs():
    """{job id: {field: value}} of every job the cluster knows (finished ones kept an hour)."""
    out = subprocess.run(["scontrol", "--oneliner", "show", "job"], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            found[fields["JobId"]] = fields
    return found


def submit(command, **env):
    """Run a submitting command; returns the ids of the jobs it submitted, in order."""
    before = set(jobs())
    shell(command, **env)
    new = sorted(set(jobs()) - before, key=int)
    SUBMITTED.extend(new)
    return new


def wait(job, timeout=600):
    """Wait for `job` to end; returns its final state."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = jobs()[job]["JobState"]
        if state in FINAL:
            return state
        time.sleep(1)
    raise AssertionError(f"job {job} did not end within {timeout} s")


def log_of(job):
    return Path(jobs()[job]["StdOut"]).read_text()


def completed(job):
    state = wait(job)
    assert state == "COMPLETED", f"job {job}: {state}\n{log_of(job)[-3000:]}"
    return log_of(job)


def one_process(out, *args):
    out.parent.mkdir(parents=True, exist_ok=True)
    shell(f"{PY} -m pde_data generate --out {out} " + " ".join(args))
    return out


def test_the_readme_shows_exactly_the_commands_run_here():
    text = (Path(REPO) / "README.md").read_text()
    section = text[text.index("## Running on a cluster"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    lines = [" ".join(re.sub(r"\s+#.*$", "", line).split()) for block in blocks
             for line in block.replace("\\\n", " ").splitlines()]
    shown = {line for line in lines if line}
    assert shown == set(COMMANDS.values()), (shown - set(COMMANDS.values()), set(COMMANDS.values()) - shown)


def test_a_cancelled_generate_job_resumes_when_resubmitted_and_writes_the_one_process_file(work):
    out = work / "big" / "heat.h5"
    [job] = submit(COMMANDS["generate"], OUT=out)
    end = time.monotonic() + 300
    while "samples computed" not in (log_of(job) if Path(jobs()[job]["StdOut"]).exists() else ""):
        assert jobs()[job]["JobState"] not in FINAL, f"job {job} ended before it was cancelled:\n{log_of(job)}"
        assert time.monotonic() < end, "no progress line within 300 s"
        time.sleep(0.5)
    submit(COMMANDS["cancel"], jid=job)
    assert wait(job) == "CANCELLED"
    assert not out.exists() and Path(f"{out}.partial").exists()
    [again] = submit(COMMANDS["generate"], OUT=out)
    log = completed(again)
    pending = int(re.search(r"generate: (\d+) of 3000 samples to compute", log).group(1))
    assert 0 < pending < 3000, log
    assert re.search(rf"3000 samples, {pending} computed now", log), log
    reference = one_process(work / "one" / "heat-big.h5", "heat --preset smoke --n-samples 3000", HEAT_BIG)
    assert file_content(out) == file_content(reference)


def test_wind_mesh_parallel_groups_agree_with_one_process(work):
    out = work / "wind-fine.h5"
    [job] = submit(COMMANDS["wind"], OUT=out)
    completed(job)
    reference = one_process(work / "one" / "wind.h5", "wind --preset smoke --n-samples 6 mesh_shape=[8,8,4]")
    with h5py.File(reference) as serial, h5py.File(out) as parallel:
        assert np.array_equal(parallel["status"][()], serial["status"][()])
        for key in ("parameters", "observations_clean"):
            assert np.allclose(parallel[key][()], serial[key][()], rtol=0, atol=1e-7), key


def test_the_readme_chain_generates_then_sweeps_as_mpirun_does(work):
    data, runs = work / "data", work / "runs"
    ids = submit(COMMANDS["chain_generate"] + "\n" + COMMANDS["chain_sweep"], OUT=data / "heat.h5", DATA=data, RUNS=runs)
    assert len(ids) == 2, ids
    generate, sweep = ids
    completed(generate)
    sweep_log = completed(sweep)
    assert file_content(data / "heat.h5") == file_content(one_process(work / "one" / "heat.h5", "heat --preset smoke"))
    shell(COMMANDS["mpirun_sweep"], DATA=data, RUNS=work / "runs-mpirun")
    finished = sorted(p.relative_to(runs) for p in runs.rglob("metrics.json"))
    assert len(finished) == 4 and len(re.findall(r": \d+\.\d s test_", sweep_log)) == 4, sweep_log
    for path in finished:
        slurm, local = (json.loads((root / path).read_text()) for root in (runs, work / "runs-mpirun"))
        slurm.pop("wall_time_s"), local.pop("wall_time_s")
        assert slurm == local, path
    [again] = submit(COMMANDS["sweep"], DATA=data, RUNS=runs)
    log = completed(again)
    assert len(re.findall(r": done before$", log, re.M)) == 4 and " s test_" not in log, log


def test_a_failed_generate_job_takes_its_chained_sweep_with_it(work):
    """--kill-on-invalid-dep=yes: the sweep of a chain whose generate job fails ends, not pends."""
    data = work / "bad"
    ids = submit(COMMANDS["chain_generate"].replace("heat smoke", "heat smoke no_such_setting=1") + "\n"
                 + COMMANDS["chain_sweep"], OUT=data / "heat.h5", DATA=data, RUNS=work / "runs-bad")
    generate, sweep = ids
    assert wait(generate) == "FAILED"
    assert len(own_lines(log_of(generate))) == 1, log_of(generate)  # rank 0's line only
    assert wait(sweep, timeout=120) == "CANCELLED"
