"""Console entry points: one module per command, each with a `main(argv=None)`."""
