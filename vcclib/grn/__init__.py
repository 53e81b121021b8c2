"""Gene regulatory networks: inference on Dask, evaluation against the literature, propagation predictors."""
