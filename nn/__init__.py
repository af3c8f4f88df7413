"""neurofx.nn"""
