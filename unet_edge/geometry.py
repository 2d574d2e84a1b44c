"""Size arithmetic of U-Nets: input <-> output, halo, alignment, legal tiles.

Pure Python, no numpy or torch. A *valid* U-Net (the paper's) shrinks its
input: every ``k x k`` convolution removes ``k - 1`` pixels, every 2x2
max-pool needs an even map, and the output is ``input - 2 * halo``. A *same*
U-Net keeps the size but needs inputs divisible by ``2**depth``; for tiling
we crop a margin of ``halo`` pixels on every side of its output so that the
zero padding inside the network never reaches the pixels we keep.

Max-pooling makes the network translation-equivariant only for shifts that
are multiples of ``alignment = 2**depth``. Tiles must therefore start at
multiples of the alignment in padded-image coordinates; a stride equal to the
output tile (388 for the paper's 572 tile) is not one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .config import Padding, UNetConfig, look_up
from .errors import ConfigError, InputError


def round_up_size(smallest: int, step: int, n: int) -> int:
    """The smallest of the sizes ``smallest + step * k`` (k >= 0) that is >= ``n``
    (``step`` 0: a fixed size, ``smallest`` itself)."""
    if not step or n <= smallest:
        return smallest
    return smallest + -(-(n - smallest) // step) * step


class _SizeRules:
    """Tile rules shared by every geometry: derived from the legal sizes and the output rule.

    A subclass gives ``min_input``, ``step``, ``alignment``, ``halo``, ``crop``,
    ``padding_name`` and ``_network_output(n)`` (None when ``n`` is not legal).
    """

    if TYPE_CHECKING:  # the numbers above come from each subclass (fields or properties)

        def __getattr__(self, name: str) -> Any: ...

    def _network_output(self, n: int) -> int | None:
        raise NotImplementedError

    def _useful_output(self, n: int) -> int | None:
        out = self._network_output(n)
        if out is not None:
            out -= 2 * self.crop
        return out if out is not None and out >= 1 else None

    def network_output_size(self, n: int) -> int:
        """Size of the network's raw output for input size ``n``; raises if ``n`` is not legal."""
        self.output_size(n)
        out = self._network_output(n)
        assert out is not None
        return out

    def output_size(self, n: int) -> int:
        """Useful output size (after the same-padding crop) for input size ``n``.

        Raises :class:`InputError` naming the nearest legal sizes when ``n`` is not legal.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InputError(f"input size must be a positive integer, got {n!r}")
        out = self._useful_output(n)
        if out is None:
            lo = self.round_up(n) - self.step
            near = f"{lo} or {self.round_up(n)}" if lo >= self.min_input else str(self.min_input)
            raise InputError(
                f"input size {n} is not legal for a {self.padding_name} U-Net{self.depth_text} "
                f"(legal: {self.legal_text}); use {near}"
            )
        return out

    @property
    def legal_text(self) -> str:
        return f"{self.min_input} + {self.step}k" if self.step else f"only {self.min_input}"

    def is_legal(self, n: int) -> bool:
        return isinstance(n, int) and n >= 1 and self._useful_output(n) is not None

    def round_up(self, n: int) -> int:
        """Smallest legal input size >= ``n`` (a fixed-size graph: its one size)."""
        return round_up_size(self.min_input, self.step, n)

    def legal_inputs(self, up_to: int) -> list[int]:
        """All legal input sizes <= ``up_to``."""
        if not self.step:
            return [self.min_input] if self.min_input <= up_to else []
        return list(range(self.min_input, up_to + 1, self.step))

    def input_for_output(self, out: int) -> int:
        """Smallest legal input whose useful output is >= ``out`` px (a fixed size: that size)."""
        if out < 1:
            raise InputError(f"wanted output size must be >= 1, got {out}")
        return self.round_up(out + 2 * self.halo)

    def stride(self, n: int) -> int:
        """Tile stride for input tile ``n``: the output size rounded down to the alignment.

        0 means tiles of this size cannot be stitched (only one tile fits).
        """
        return (self.output_size(n) // self.alignment) * self.alignment

    def check_tile(self, n: int) -> int:
        """Return a user-chosen tile size if legal, else raise naming the nearest legal sizes."""
        try:
            self.output_size(n)
        except InputError as e:
            raise ConfigError(f"tile: {e}") from None
        return n

    def describe(self) -> str:
        return (
            f"{self.padding_name} U-Net{self.depth_text}: halo {self.halo} px, alignment "
            f"{self.alignment} px, legal inputs {self.legal_text}"
        )


@dataclass(frozen=True)
class Geometry(_SizeRules):
    """Size rules of a U-Net with ``depth`` pools.

    Sizes are in pixels, per spatial axis; the network is applied to each axis
    independently, so a tile may be non-square.
    """

    depth: int = 4
    padding: Padding = Padding.VALID
    convs_per_level: int = 2
    kernel_size: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", look_up(Padding, self.padding, "padding"))
        if self.depth < 0 or self.convs_per_level < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(
                f"invalid geometry depth={self.depth}, convs_per_level={self.convs_per_level}, "
                f"kernel_size={self.kernel_size}"
            )

    @classmethod
    def from_config(cls, config: UNetConfig) -> Geometry:
        return cls(config.depth, config.padding, config.convs_per_level, config.kernel_size)

    @property
    def alignment(self) -> int:
        """Shift (px) under which the network is exactly translation-equivariant."""
        return 2**self.depth

    @property
    def step(self) -> int:
        """Distance between legal input sizes (the alignment for a U-Net)."""
        return self.alignment

    @property
    def crop(self) -> int:
        """Pixels dropped from each side of the network's raw output (same padding: the halo)."""
        return self.halo if self.padding is Padding.SAME else 0

    @property
    def padding_name(self) -> str:
        return self.padding.value

    @property
    def depth_text(self) -> str:
        return f" of depth {self.depth}"

    @property
    def _shrink(self) -> int:
        """Pixels one level's convolutions remove from a map (valid padding)."""
        return self.convs_per_level * (self.kernel_size - 1)

    @cached_property
    def conv_radius(self) -> int:
        """Receptive-field radius from convolutions alone, in input pixels."""
        r = self.kernel_size // 2
        per_level = self.convs_per_level * r
        enc = sum(per_level * 2**i for i in range(self.depth))
        return 2 * enc + per_level * 2**self.depth

    @cached_property
    def halo(self) -> int:
        """Pixels lost (valid) or cropped (same) on each side of a tile.

        92 for the paper's network. For same padding the margin is the
        convolutions' receptive-field radius plus one alignment period, which
        covers the extent of the pooling windows as well.
        """
        if self.padding is Padding.VALID:
            return self.conv_radius
        return self.conv_radius + self.alignment

    def _network_output(self, n: int) -> int | None:
        """Network output size for input ``n``, or None when ``n`` is not legal."""
        if self.padding is Padding.SAME:
            return n if n >= 1 and n % self.alignment == 0 else None
        s = n
        for _ in range(self.depth):
            s -= self._shrink
            if s < 2 or s % 2:
                return None
            s //= 2
        s -= self._shrink
        if s < 1:
            return None
        for _ in range(self.depth):
            s = 2 * s - self._shrink
            if s < 1:
                return None
        return s

    @cached_property
    def min_input(self) -> int:
        """Smallest legal input size (188 for the paper's network).

        Found by scanning; every legal size is ``min_input + k * alignment``.
        """
        n = 1
        while self._useful_output(n) is None:
            n += 1
        return n


@dataclass(frozen=True)
class TileGeometry(_SizeRules):
    """Size rules given as numbers, for a network whose architecture is unknown.

    What :mod:`unet_edge.models.probe` measures on a foreign ONNX graph (or a
    bioimage.io description gives): the graph runs on ``min_size + step * k``
    (``step`` 0: only ``min_size``, a fixed-shape graph), raw output
    ``input - 2 * shrink``, ``margin`` pixels cropped from each side of that
    output (where zero padding inside the network reaches), and the
    translation period ``alignment``. The tile halo is ``shrink + margin``;
    legal tiles are the sizes the graph runs on that keep some output.
    """

    min_size: int
    step: int
    alignment: int
    shrink: int = 0
    margin: int = 0

    def __post_init__(self) -> None:
        nums = (self.min_size, self.step, self.alignment, self.shrink, self.margin)
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in nums) or not (
            self.min_size >= 1 and self.alignment >= 1
        ):
            raise ConfigError(
                f"invalid tile geometry min_size={self.min_size}, step={self.step}, "
                f"alignment={self.alignment}, shrink={self.shrink}, margin={self.margin}"
            )

    @property
    def halo(self) -> int:
        return self.shrink + self.margin

    @property
    def crop(self) -> int:
        return self.margin

    @property
    def padding_name(self) -> str:
        return "valid" if self.shrink else "same"

    @property
    def depth_text(self) -> str:
        return " (probed)"

    @cached_property
    def min_input(self) -> int:
        """Smallest legal tile: the smallest size the graph runs on that keeps >= 1 output px."""
        return round_up_size(self.min_size, self.step, 2 * self.halo + 1)

    def _network_output(self, n: int) -> int | None:
        k, r = divmod(n - self.min_size, self.step) if self.step else (0, n - self.min_size)
        return n - 2 * self.shrink if k >= 0 and r == 0 else None

    def to_dict(self) -> dict[str, int]:
        return {
            "min_size": self.min_size,
            "min_input": self.min_input,
            "step": self.step,
            "alignment": self.alignment,
            "shrink": self.shrink,
            "margin": self.margin,
            "halo": self.halo,
        }
