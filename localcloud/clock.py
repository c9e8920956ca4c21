"""One simulated clock for the whole local cloud, so tests can make days pass in seconds."""

import bisect
import threading
import time


class SimulatedClock:
    """Simulated now is the real time plus an offset that only ever grows: it ticks with real
    time and jumps forward when a test moves it, never back (AWS and Google never see time go
    backwards, and the product may rely on that). Safe to share between threads."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        # (real epoch seconds of a move, offset from then on), in real-time order: what the
        # simulated time was at a past real moment (moto stamps what it stores in real time).
        self._moves: list[tuple[float, float]] = []

    @property
    def offset(self) -> float:
        """Seconds the simulated world is ahead of the real one."""
        with self._lock:
            return self._offset

    def now(self) -> float:
        """Simulated now, in epoch seconds."""
        with self._lock:
            return time.time() + self._offset

    def simulated_at(self, real_epoch_seconds: float) -> float:
        """The simulated time it was at a real moment (moto's CreationDate, say): that moment
        plus the offset in force then."""
        with self._lock:
            index = bisect.bisect_right(self._moves, real_epoch_seconds, key=lambda m: m[0])
            return real_epoch_seconds + (self._moves[index - 1][1] if index else 0.0)

    def advance(self, seconds: float) -> float:
        """Moves simulated time `seconds` forward; returns the new simulated now."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward: cannot advance by {seconds} s")
        with self._lock:
            return self._move(time.time(), self._offset + seconds)

    def advance_to(self, epoch_seconds: float) -> float:
        """Moves simulated time forward to `epoch_seconds`; returns the new simulated now."""
        with self._lock:
            real = time.time()
            now = real + self._offset
            if epoch_seconds < now:
                raise ValueError(
                    f"the clock only moves forward: {epoch_seconds:.3f} is "
                    f"{now - epoch_seconds:.3f} s before simulated now ({now:.3f})"
                )
            self._move(real, epoch_seconds - real)
            return epoch_seconds

    def _move(self, real: float, offset: float) -> float:
        self._offset = offset
        self._moves.append((real, offset))
        return real + offset
