import threading

import pytest

from grid.scorers import TorchThread


def test_every_call_runs_on_one_thread_that_is_not_the_callers():
    torch_thread = TorchThread()
    seen = {torch_thread.run(threading.get_ident) for _ in range(3)}
    from_another = []
    caller = threading.Thread(target=lambda: from_another.append(torch_thread.run(threading.get_ident)))
    caller.start()
    caller.join()
    assert len(seen) == 1 and seen == set(from_another)  # one OpenMP team, whoever calls
    assert threading.get_ident() not in seen


def test_results_and_errors_come_back_to_the_caller():
    torch_thread = TorchThread()
    assert torch_thread.run(lambda a, *, b: a + b, 2, b=3) == 5
    with pytest.raises(ValueError, match="bad block"):
        torch_thread.run(lambda: (_ for _ in ()).throw(ValueError("bad block")))
    assert torch_thread.run(lambda: "still serving") == "still serving"
