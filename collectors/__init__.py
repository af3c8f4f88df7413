"""neurofx.collectors"""
