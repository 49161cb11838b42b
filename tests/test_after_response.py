"""``after_response.defer``: inline without gevent; under gevent, after the greenlets ready to run,
in order, each failure logged, nothing lost at exit or run twice after fork."""
import subprocess
import sys
import textwrap

from llmgate.after_response import defer

GEVENT_PRELUDE = """
from gevent import monkey; monkey.patch_all()
import gevent, os, sys
from llmgate.after_response import defer
"""


def run_under_gevent(body: str) -> str:
    code = GEVENT_PRELUDE + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def test_without_gevent_the_work_runs_at_once():
    seen = []
    defer(seen.append, "now")
    assert seen == ["now"]


def test_under_gevent_answers_ready_together_go_before_their_bookkeeping():
    out = run_under_gevent("""
        order = []
        def answer(n):
            order.append(f"answer {n}")
            defer(order.append, f"bookkeeping {n}")
        gevent.joinall([gevent.spawn(answer, n) for n in range(3)])  # three greenlets ready at once
        gevent.sleep(0)
        print(order)
    """)
    assert "['answer 0', 'answer 1', 'answer 2', 'bookkeeping 0', 'bookkeeping 1', 'bookkeeping 2']" in out


def test_a_failing_job_is_logged_and_the_next_still_runs():
    out = run_under_gevent("""
        import logging
        logging.basicConfig(level=logging.INFO, stream=sys.stdout)
        def broken():
            raise RuntimeError("boom")
        defer(broken)
        defer(print, "next ran")
        gevent.sleep(0)
    """)
    assert "deferred bookkeeping failed" in out and "RuntimeError: boom" in out
    assert "next ran" in out


def test_work_still_queued_at_exit_runs_then():
    out = run_under_gevent("""
        defer(print, "ran at exit")
        sys.exit(0)  # before the loop ever turned
    """)
    assert "ran at exit" in out


def test_a_forked_child_does_not_run_its_parents_queued_work():
    out = run_under_gevent("""
        defer(lambda: print("ran in", "child" if os.getpid() != parent else "parent", flush=True))
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            gevent.sleep(0.05)
            os._exit(0)
        os.waitpid(pid, 0)
        gevent.sleep(0)
    """)
    assert out.count("ran in") == 1 and "ran in parent" in out
