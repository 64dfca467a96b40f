"""Zero-copy tensor transport over shared memory and Aeron (type stubs of the native module).

See docs/python.md for the view contract: a ``Frame`` and its ``.array`` are valid only
inside the callback they were passed to; a ``Claim``'s ``.array`` only until commit/abort.
"""

from types import TracebackType
from typing import Any, Callable, Iterator, Literal, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

DtypeLike = Union[str, np.dtype[Any], type]
"""``"u8"``/``"uint8"``, ``"i16"``, ``"f32"``, ``"bool"``, ``"bytes"``, ``"bit"``...; a NumPy
dtype or scalar type (``np.uint16``). Little-endian only."""

ShapeLike = Union[int, Sequence[int]]
"""1 to 8 non-negative dimensions."""

class TensorpoolError(Exception):
    """Building a role, Aeron, shared memory, or a claim the producer refused."""

class FrameExpired(TensorpoolError):
    """A Frame used after its callback returned, or a Claim after commit/abort."""

class FrameLate(TensorpoolError):
    """The producer overwrote the slot while it was copied: discard the copy."""

class ViewEscapedWarning(RuntimeWarning):
    """A reference to a frame's array, a view of it or a DLPack tensor of it outlived the
    callback (it still points into shared memory the producer rewrites)."""

def crc32c(data: Union[bytes, bytearray, memoryview, npt.NDArray[Any]]) -> int:
    """CRC32C (Castagnoli) of a bytes-like object."""

def monotonic_ns() -> int:
    """``CLOCK_MONOTONIC`` in nanoseconds (the clock of frame timestamps)."""

class Context:
    """The Aeron connection the producers and consumers of a process share."""

    @staticmethod
    def embedded(aeron_dir: Optional[str] = None) -> Context:
        """Starts an embedded Aeron media driver (in ``aeron_dir``, else a private dir)."""
    @staticmethod
    def connect(aeron_dir: Optional[str] = None, timeout: float = 10.0) -> Context:
        """Connects to the media driver in ``aeron_dir`` (default: ``$AERON_DIR``)."""
    @property
    def aeron_dir(self) -> str: ...
    @property
    def is_embedded(self) -> bool: ...

class DriverEndpoints:
    """Where an SHM driver listens; ``driver=`` of ``Producer`` / ``Consumer``."""

    def __init__(
        self,
        control_channel: Optional[str] = None,
        control_stream_id: Optional[int] = None,
        announce_channel: Optional[str] = None,
        announce_stream_id: Optional[int] = None,
        keepalive_interval: Optional[float] = None,
        announce_period: Optional[float] = None,
        attach_timeout: Optional[float] = None,
    ) -> None: ...

class Claim:
    """A claimed slot. ``.array`` is writable and is the slot itself; commit or abort.
    A context manager: commits on normal exit, aborts on an exception."""

    @property
    def seq(self) -> int: ...
    @property
    def array(self) -> npt.NDArray[Any]:
        """The writable array over the slot; raises FrameExpired after commit/abort."""
    def commit(self) -> int:
        """Commits the frame; returns its sequence."""
    def abort(self) -> None:
        """Abandons the frame (consumers never see it)."""
    def __enter__(self) -> Claim: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Producer:
    """A producer: standalone (its own SHM files) or in driver mode."""

    def __init__(
        self,
        context: Context,
        stream_id: int,
        *,
        base_dir: Optional[str] = None,
        driver: Union[None, bool, DriverEndpoints] = None,
        producer_id: Optional[int] = None,
        header_nslots: Optional[int] = None,
        stride_bytes: Optional[int] = None,
        pool_id: Optional[int] = None,
        prefault: Optional[bool] = None,
        announce_period: Optional[float] = None,
        aeron_timeout: Optional[float] = None,
        channel: Optional[str] = None,
        name: Optional[str] = None,
    ) -> None: ...
    def claim(self, shape: ShapeLike, dtype: Optional[DtypeLike] = None) -> Claim:
        """Claims the next slot (dtype default ``u8``): write ``.array``, then commit."""
    def offer(self, array: npt.ArrayLike) -> int:
        """Copies ``array`` into the next slot and commits it; returns the sequence."""
    def do_work(self) -> int:
        """One duty cycle (announces, QoS, hellos, keepalives); 0 when idle."""
    def work_for(self, seconds: float) -> None:
        """Duty cycles for ``seconds``, GIL released."""
    def wait_for_consumers(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Duty cycles (GIL released) until ``count`` consumers are known."""
    def counters(self) -> dict[str, int]: ...
    @property
    def consumer_count(self) -> int: ...
    @property
    def epoch(self) -> Optional[int]: ...
    @property
    def next_seq(self) -> int: ...
    @property
    def is_driver_mode(self) -> bool: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def epoch_dir(self) -> Optional[str]: ...
    def close(self) -> None:
        """Stops producing (detach / remove files); aborts an open claim."""

class Frame:
    """A frame in shared memory, valid only inside the callback it was passed to.
    Read ``.array``, then ``recheck()``: only then is what you read the committed frame."""

    @property
    def array(self) -> npt.NDArray[Any]:
        """Read-only array over the slot (zero copy); emptied when the callback returns."""
    def recheck(self) -> bool:
        """True if the slot still holds this frame (everything read before is valid)."""
    def copy(self) -> npt.NDArray[Any]:
        """An owned, rechecked copy; raises FrameLate if overwritten meanwhile."""
    @property
    def seq(self) -> int: ...
    @property
    def epoch(self) -> int: ...
    @property
    def stream_id(self) -> int: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def strides(self) -> tuple[int, ...]:
        """Byte strides."""
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def dtype_name(self) -> str:
        """The tensorpool dtype name (``u8`` ... ``f64``, ``bool``, ``bytes``, ``bit``)."""
    @property
    def nbytes(self) -> int: ...
    @property
    def timestamp_ns(self) -> int: ...
    @property
    def meta_version(self) -> int: ...
    @property
    def alive(self) -> bool:
        """Whether the callback is still running."""
    def __dlpack__(
        self,
        *,
        stream: Optional[Any] = None,
        max_version: Optional[tuple[int, int]] = None,
        dl_device: Optional[tuple[int, int]] = None,
        copy: Optional[bool] = None,
    ) -> Any:
        """A DLPack capsule over the slot (zero copy, read-only, CPU)."""
    def __dlpack_device__(self) -> tuple[int, int]: ...

class FrameCopy:
    """An owned copy of a frame (``Consumer.frames()``, ``next_frame()``)."""

    @property
    def array(self) -> npt.NDArray[Any]: ...
    @property
    def seq(self) -> int: ...
    @property
    def epoch(self) -> int: ...
    @property
    def stream_id(self) -> int: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def dtype_name(self) -> str: ...
    @property
    def timestamp_ns(self) -> int: ...
    def __dlpack__(self, **kwargs: Any) -> Any: ...
    def __dlpack_device__(self) -> tuple[int, int]: ...

class FrameIter(Iterator[FrameCopy]):
    def __iter__(self) -> FrameIter: ...
    def __next__(self) -> FrameCopy: ...

class SlotLease:
    """The NumPy base object of arrays over a slot (internal)."""

class Consumer:
    """A consumer: follows a standalone producer's announces or attaches through a driver."""

    def __init__(
        self,
        context: Context,
        stream_id: int,
        *,
        allowed_base_dir: Optional[str] = None,
        driver: Union[None, bool, DriverEndpoints] = None,
        consumer_id: Optional[int] = None,
        mode: Literal["stream", "rate_limited"] = "stream",
        max_rate_hz: int = 0,
        channel: Optional[str] = None,
        aeron_timeout: Optional[float] = None,
        activity_timeout: Optional[float] = None,
    ) -> None: ...
    def poll(self, callback: Callable[[Frame], Any], limit: int = 16) -> int:
        """One duty cycle (GIL released); each frame goes to ``callback``. Returns the work."""
    def frames(self, timeout: Optional[float] = None) -> FrameIter:
        """Owned copies; stops after ``timeout`` seconds without a frame (None: never)."""
    def next_frame(self, timeout: Optional[float] = None) -> Optional[FrameCopy]:
        """Waits (GIL released) for one frame; None after ``timeout``."""
    @property
    def state(self) -> Literal["unmapped", "mapped", "fallback"]: ...
    @property
    def epoch(self) -> Optional[int]: ...
    @property
    def last_seq(self) -> Optional[int]: ...
    @property
    def driver_state(self) -> Optional[str]:
        """Driver mode: ``unattached``/``attaching``/``attached``/``backoff``/``detaching``/``closed``."""
    @property
    def last_error(self) -> Optional[str]: ...
    def counters(self) -> dict[str, int]: ...
    def drops(self) -> dict[str, int]:
        """Drops by cause, ``total``, ``drops_late`` and ``gap``."""
