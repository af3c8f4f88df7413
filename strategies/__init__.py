"""neurofx.strategies"""
