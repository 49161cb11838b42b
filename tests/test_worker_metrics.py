"""Jobs show up in metrics: ``llmgate worker`` writes prometheus_client multiprocess files (its work
horses included), the API's /metrics adds them, and ``--metrics-bind`` serves them itself."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from flask.cli import ScriptInfo
from prometheus_client.parser import text_string_to_metric_families

from llmgate import metrics, worker_metrics
from llmgate.cli import cli
from llmgate.extensions import get_queue

from .cli.conftest import LLMGATE, free_port, process_env, stop  # noqa: F401  (process_env is a fixture)
from .test_metrics import scrape

JOB = "llmgate_job_duration_seconds_count"
HERE = __name__  # jobs below run in the worker subprocess, imported by this name


def succeeding_job() -> str:
    metrics.BATCH_ROWS.labels("test", "ok").inc()  # recorded in the work horse
    return "done"


def failing_job() -> None:
    raise ValueError("this job fails")


def job_count(samples, func: str, outcome: str) -> float:
    return samples.get((JOB, (("origin", "worker"), ("outcome", outcome), ("task", f"{HERE}.{func}"))), 0.0)


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def worker_start_times(samples) -> list[tuple]:
    return [labels for name, labels in samples if name == "llmgate_process_start_time_seconds"
            and ("origin", "worker") in labels]


@pytest.fixture
def api(app, app_factory, process_env):  # noqa: F811
    """An app on the worker subprocess's instance folder (``app`` empties the database and Redis first)."""
    return app_factory(INSTANCE_PATH=process_env["LLMGATE_INSTANCE_PATH"])


# --- real worker processes ----------------------------------------------------------------------

@pytest.mark.once
def test_jobs_of_a_burst_worker_show_up_on_the_api_metrics(api, process_env):  # noqa: F811
    client = api.test_client()
    assert not any(("origin", "worker") in labels for _, labels in scrape(client)), "no worker has run yet"
    with api.app_context():
        for _ in range(2):
            get_queue("default").enqueue(succeeding_job)
        get_queue("default").enqueue(failing_job)

    done = subprocess.run([*LLMGATE, "worker", "--burst", "--queues", "default", "--no-scheduler"],
                          env=process_env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    samples = scrape(client)
    assert job_count(samples, "succeeding_job", "success") == 2
    assert job_count(samples, "failing_job", "failure") == 1
    assert job_count(samples, "succeeding_job", "failure") == job_count(samples, "failing_job", "success") == 0
    # Counted in the horses: the second horse went on from the first one's count.
    assert samples[("llmgate_batch_rows_total", (("kind", "test"), ("origin", "worker"), ("outcome", "ok")))] == 2
    # The API's own series are untouched, and the stopped worker left no live series behind.
    assert ("llmgate_http_requests_in_flight", ()) in samples
    assert worker_start_times(samples) == []
    # Its totals were compacted: no folder per process or per job is left.
    root = worker_metrics.worker_metrics_root(api.instance_path)
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["retired"]
    assert len(list((root / "retired").glob("*.db"))) <= 2


@pytest.mark.once
def test_metrics_bind_serves_a_running_worker_with_the_token(api, process_env):  # noqa: F811
    port = free_port()
    env = {**process_env, "LLMGATE_WORKER_METRICS_BIND": f"127.0.0.1:{port}", "LLMGATE_METRICS_TOKEN": "w0rker-t0ken"}
    worker = subprocess.Popen([*LLMGATE, "worker", "--queues", "default", "--no-scheduler"], env=env)
    url, auth = f"http://127.0.0.1:{port}/metrics", {"Authorization": "Bearer w0rker-t0ken"}
    try:
        with api.app_context():
            job = get_queue("default").enqueue(succeeding_job)
        deadline, samples = time.monotonic() + 30, {}
        while job_count(samples, "succeeding_job", "success") < 1:
            assert worker.poll() is None and time.monotonic() < deadline, "the job was not counted in time"
            time.sleep(0.2)
            try:
                response = requests.get(url, headers=auth, timeout=2)
            except requests.ConnectionError:
                continue
            assert response.status_code == 200
            samples = parse(response.text)
        assert job.get_status(refresh=True) == "finished"
        assert requests.get(url, timeout=2).status_code == 401
        # The running worker process is there (one series, its own pid), here and on the API.
        assert len(worker_start_times(samples)) == 1
        on_api = scrape(api.test_client(), Authorization="Bearer w0rker-t0ken")
        assert worker_start_times(on_api) == worker_start_times(samples)
        assert job_count(on_api, "succeeding_job", "success") == 1

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
        after = scrape(api.test_client(), Authorization="Bearer w0rker-t0ken")
        assert job_count(after, "succeeding_job", "success") == 1 and worker_start_times(after) == []
        with pytest.raises(requests.ConnectionError):
            requests.get(url, headers=auth, timeout=2)
    finally:
        stop(worker)


def test_a_bad_metrics_bind_is_refused(app):
    result = app.test_cli_runner().invoke(cli, ["worker", "--metrics-bind", "localhost"],
                                          obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 2 and "HOST:PORT" in result.output


# --- the folders, without processes -------------------------------------------------------------

def write(folder: Path, identity: str, typ: str, samples: dict[tuple[str, str, tuple], float]) -> None:
    """Write ``{(metric, sample, ((label, value), ...)): value}`` as the process ``identity`` would."""
    values = MmapedDict(str(folder / f"{typ}_{identity}.db"))
    for (metric, sample, labels), value in samples.items():
        key = mmap_key(metric, sample, [n for n, _ in labels], [v for _, v in labels], "help")
        values.write_value(key, value, time.time())
    values.close()


def totals(root: Path) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in worker_metrics.WorkerCollector(root=root).collect() for s in family.samples}


def test_folders_keep_totals_across_supervisors_and_drop_what_died(tmp_path):
    root = tmp_path / "prometheus-worker"
    jobs = ("llmgate_jobs", "llmgate_jobs_total", (("job", "j"),))
    busy = ("llmgate_busy", "llmgate_busy", ())
    running = worker_metrics.WorkerMetricsFolder.create(root)
    killed = worker_metrics.WorkerMetricsFolder.create(root)
    for folder, pid in ((running, "101"), (killed, "202")):
        write(folder.path, pid, "counter", {jobs: 2})
        write(folder.path, pid, "gauge_livesum", {busy: 1})
    os.close(killed._lock_fd)  # `kill -9` of that supervisor: its lock is released, nothing else happens
    (running.path / "counter_303.db").touch()  # a process caught between creating its file and sizing it

    counted = totals(root)
    jobs_key = ("llmgate_jobs_total", (("job", "j"), ("origin", "worker")))
    busy_key = ("llmgate_busy", (("origin", "worker"),))
    assert counted[jobs_key] == 4 and counted[busy_key] == 1  # the killed one's live gauge is not counted

    running.mark_dead(101)
    assert busy_key not in totals(root) and totals(root)[jobs_key] == 4

    # The next supervisor folds the killed one's totals into `retired`: nothing is lost or counted twice.
    newcomer = worker_metrics.WorkerMetricsFolder.create(root)
    assert not (killed.path / "counter_202.db").exists() and totals(root)[jobs_key] == 4
    running.close()
    newcomer.close()
    assert totals(root)[jobs_key] == 4
    assert sorted(p.name for p in root.iterdir()) == [".lock", "retired"]


def test_a_reader_waits_for_a_supervisor_that_is_retiring_folders(tmp_path):
    root = tmp_path / "prometheus-worker"
    worker_metrics.WorkerMetricsFolder.create(root).close()
    fd = os.open(root / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        assert worker_metrics.WorkerCollector(root=root).collect() == []  # gives up rather than hang a scrape
        assert time.monotonic() - started >= 1
    finally:
        os.close(fd)


def test_api_metrics_add_worker_families_to_its_own_once(app_factory, tmp_path):
    api = app_factory(INSTANCE_PATH=str(tmp_path))
    client = api.test_client()
    before = client.get("/metrics").get_data(as_text=True)
    assert 'origin="worker"' not in before  # no worker ever ran on this instance

    folder = worker_metrics.WorkerMetricsFolder.create(worker_metrics.worker_metrics_root(api.instance_path))
    try:
        write(folder.path, "7", "histogram", {
            ("llmgate_job_duration_seconds", "llmgate_job_duration_seconds_sum",
             (("job", "j"), ("outcome", "success"))): 0.5,
            ("llmgate_job_duration_seconds", "llmgate_job_duration_seconds_bucket",
             (("job", "j"), ("le", "1.0"), ("outcome", "success"))): 1,
        })
        text = client.get("/metrics").get_data(as_text=True)
    finally:
        folder.close()
    assert text.count("# HELP llmgate_job_duration_seconds ") == 1  # one family: this API's and the workers'
    samples = parse(text)
    assert samples[(JOB, (("job", "j"), ("origin", "worker"), ("outcome", "success")))] == 1
    assert samples[("llmgate_job_duration_seconds_bucket",
                    (("job", "j"), ("le", "1.0"), ("origin", "worker"), ("outcome", "success")))] == 1
