"""Neural-network building blocks written from tensor primitives: functional convolution and
pooling via ``as_strided`` (course day w1d3), layers and initialisation."""
