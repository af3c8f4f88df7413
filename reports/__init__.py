"""neurofx.reports"""
