"""Provider login protocols served by the loopback auth front (``support.authfront``)."""
