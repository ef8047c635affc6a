"""How busy the machine is (charlstm_core.training.load): what other programs did with the cores
over an interval, read from counters that the tests replace (no wall time is read)."""

from __future__ import annotations

from charlstm_core.training.load import LoadMeter, MachineLoad


def meter(busy, own, wall, programs=None, loadavg=None, cores=2):
    """A meter whose readers return the next value of each list in turn."""
    it = {k: iter(v) for k, v in dict(busy=busy, own=own, wall=wall).items()}
    progs = iter(programs or [None, None])
    return LoadMeter(
        busy=lambda: next(it["busy"]),
        own=lambda: next(it["own"]),
        wall=lambda: next(it["wall"]),
        programs=lambda: next(progs),
        loadavg=lambda: loadavg,
        cores=cores,
    )


def test_other_programs_use_is_the_cores_busy_time_less_this_process():
    # over 2 s the cores were busy 3.6 s, 0.4 s of it this process: others used 1.6 cores
    before = {1: ("python3", 10.0), 2: ("bash", 1.0)}
    after = {1: ("python3", 13.2), 2: ("bash", 1.01)}
    m = meter(busy=[100.0, 103.6], own=[5.0, 5.4], wall=[0.0, 2.0], programs=[before, after])
    m.start()
    load = m.load()
    assert abs(load.others - 1.6) < 1e-9 and load.busy and load.cores == 2
    assert load.programs == ("python3",)  # bash used 0.005 of a core: not one of them
    said = load.sentence()
    assert "busy" in said and "python3" in said and "1.6 of its 2 cores" in said


def test_a_quiet_machine_says_nothing_and_unknown_is_not_busy():
    m = meter(busy=[100.0, 100.1], own=[5.0, 5.0], wall=[0.0, 1.0])
    m.start()
    quiet = m.load()
    assert not quiet.busy and quiet.sentence() == ""
    assert not MachineLoad(2, None).busy


def test_without_proc_stat_the_load_average_is_read():
    m = meter(busy=[None, None], own=[0.0, 1.0], wall=[0.0, 1.0], loadavg=2.5)
    m.start()
    assert abs(m.load().others - 1.5) < 1e-9  # the minute's average less this process's share


def test_a_change_of_half_a_core_changes_the_estimate():
    busy, idle = MachineLoad(2, 1.8), MachineLoad(2, 0.1)
    assert busy.differs(idle) and idle.differs(busy)
    assert not busy.differs(MachineLoad(2, 1.5))
    assert not busy.differs(None) and not busy.differs(MachineLoad(2, None))
