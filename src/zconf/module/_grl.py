"""Gradient reversal: the identity forward, minus lambda times the gradient backward (Ganin & Lempitsky 2015)."""

from __future__ import annotations

import torch


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.scale * grad_output, None


def grad_reverse(inputs: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity in the forward pass; multiplies the incoming gradient by ``-scale`` in the backward pass.

    Placed between an encoder and a domain discriminator, one backward pass trains the discriminator to
    tell the domains apart and pushes the encoder, with weight ``scale``, to make them indistinguishable.

    Parameters
    ----------
    inputs
        Any tensor.
    scale
        λ ≥ 0, the weight of the reversed gradient.

    Examples
    --------
    >>> x = torch.ones(3, requires_grad=True)
    >>> grad_reverse(x, 0.5).sum().backward()
    >>> x.grad
    tensor([-0.5000, -0.5000, -0.5000])
    """
    if scale < 0:
        msg = f"The gradient-reversal scale must be >= 0, got {scale}."
        raise ValueError(msg)
    return _GradientReversal.apply(inputs, float(scale))
