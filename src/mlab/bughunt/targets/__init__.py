"""Reference training scripts for bug hunts: each is a clean, working script that
``mlab bughunt new`` copies into the workspace with one bug hidden in it.

Every script follows the script protocol of ``mlab inspect``: it defines
``build_model(seed) -> nn.Module`` and ``train(model, *, steps, seed, on_step) -> list[float]``,
which calls ``on_step(loss)`` after every optimizer step. ``python <script>.py`` trains it for a
few hundred steps and prints how it learns.

- ``mlp``: a multi-layer perceptron with BatchNorm, ReLU and dropout on the 8x8 digits;
- ``cnn``: a small ResNet (residual blocks with BatchNorm2d) on the 8x8 digits;
- ``transformer``: a tiny causal character-level transformer on tiny Shakespeare.
"""
