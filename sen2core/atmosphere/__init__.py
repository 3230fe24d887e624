"""Radiative transfer: spectral responses, the 6S driver, the LUT build and its evaluation."""
