"""``buttress demo``: a real service behind the middleware, a flaky upstream, traffic and
an outage, with a live view and the artifacts an SRE would look at afterwards."""
