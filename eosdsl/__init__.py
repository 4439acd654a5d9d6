"""eosdsl: edge-of-stability experiments as specs."""
