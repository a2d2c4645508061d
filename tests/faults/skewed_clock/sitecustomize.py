"""Skews this Python process's wall clock by TEST_CLOCK_SKEW_SECONDS (fault tests only).

On PYTHONPATH, Python imports it at start-up, before anything reads the time: this process
then reads a wrong time from `time.time`, `time.time_ns` and `datetime.now/utcnow/today`
(monotonic clocks and sleeps are left alone). Processes it starts are not skewed (the hook
takes itself out of their environment): Ansible's modules, run by the worker's own Python,
fail to report under a patched `datetime`. libfaketime would be the natural tool, but under
it Python 3.11's `time.sleep` fails with EINVAL (it sleeps with clock_nanosleep on an
absolute deadline).
"""

import datetime as _dt
import os
import time as _time

_skew = float(os.environ.pop("TEST_CLOCK_SKEW_SECONDS", None) or 0)
_here = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if p and os.path.abspath(p) != _here)
if _skew:
    _real_time, _real_time_ns = _time.time, _time.time_ns
    _delta = _dt.timedelta(seconds=_skew)
    _time.time = lambda: _real_time() + _skew
    _time.time_ns = lambda: _real_time_ns() + int(_skew * 1_000_000_000)

    class _SkewedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return super().now(tz) + _delta

        @classmethod
        def utcnow(cls):
            return super().utcnow() + _delta

        @classmethod
        def today(cls):
            return super().today() + _delta

    _dt.datetime = _SkewedDatetime
