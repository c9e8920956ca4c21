"""One simulated clock for the whole local cloud, so tests can make days pass in seconds."""

import threading
import time


class SimulatedClock:
    """Simulated now is the real time plus an offset that only ever grows: it ticks with real
    time and jumps forward when a test moves it, never back (AWS and Google never see time go
    backwards, and the product may rely on that). Safe to share between threads."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        """Seconds the simulated world is ahead of the real one."""
        with self._lock:
            return self._offset

    def now(self) -> float:
        """Simulated now, in epoch seconds."""
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Moves simulated time `seconds` forward; returns the new simulated now."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward: cannot advance by {seconds} s")
        with self._lock:
            self._offset += seconds
            return time.time() + self._offset

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
            self._offset = epoch_seconds - real
            return epoch_seconds
