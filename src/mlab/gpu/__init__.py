"""GPU kernels in Triton (course day w1d6); they run on the CPU with TRITON_INTERPRET=1."""
