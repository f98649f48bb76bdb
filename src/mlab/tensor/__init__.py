"""Array programming: strides and views, indexing, reductions, gather/scatter, einsum and
einops, and vectorised algorithms (course day w1d1)."""
