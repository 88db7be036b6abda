"""Read queries: each takes the session keyword-only and returns read models or DataFrames."""
