"""Pure numpy kernels: arrays in, arrays out, no I/O, no dask."""
