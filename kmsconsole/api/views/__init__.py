"""REST API views: each parses input, runs one operation through `run()`, and shapes the output."""
