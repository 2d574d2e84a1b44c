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

from .config import Padding, UNetConfig, look_up
from .errors import ConfigError, InputError


@dataclass(frozen=True)
class Geometry:
    """Size rules of a U-Net with ``depth`` pools.

    Sizes are per spatial axis; the network is applied to each axis
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

    def _useful_output(self, n: int) -> int | None:
        out = self._network_output(n)
        if out is not None and self.padding is Padding.SAME:
            out -= 2 * self.halo
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
            lo = self.round_up(n) - self.alignment
            near = f"{lo} or {self.round_up(n)}" if lo >= self.min_input else str(self.min_input)
            raise InputError(
                f"input size {n} is not legal for a {self.padding.value} U-Net of depth "
                f"{self.depth} (legal: {self.min_input} + {self.alignment}k); use {near}"
            )
        return out

    def is_legal(self, n: int) -> bool:
        return isinstance(n, int) and n >= 1 and self._useful_output(n) is not None

    @cached_property
    def min_input(self) -> int:
        """Smallest legal input size (188 for the paper's network).

        Found by scanning; every legal size is ``min_input + k * alignment``.
        """
        n = 1
        while self._useful_output(n) is None:
            n += 1
        return n

    def round_up(self, n: int) -> int:
        """Smallest legal input size >= ``n``."""
        if n <= self.min_input:
            return self.min_input
        k = -(-(n - self.min_input) // self.alignment)
        return self.min_input + k * self.alignment

    def legal_inputs(self, up_to: int) -> list[int]:
        """All legal input sizes <= ``up_to``."""
        return list(range(self.min_input, up_to + 1, self.alignment))

    def input_for_output(self, out: int) -> int:
        """Smallest legal input whose useful output is >= ``out`` pixels."""
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
            f"{self.padding.value} U-Net, depth {self.depth}: halo {self.halo} px, alignment "
            f"{self.alignment} px, legal inputs {self.min_input} + {self.alignment}k"
        )
