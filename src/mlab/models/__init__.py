"""Models assembled from mlab's own layers, with loaders for published weights."""
