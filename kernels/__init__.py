"""neurofx.kernels"""
