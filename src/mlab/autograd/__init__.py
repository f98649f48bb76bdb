"""A reverse-mode automatic differentiation engine over torch tensors (course day w1d4)."""
