"""Wire types: every request body and response shape the dashboard sees, as msgspec structs.

Envelopes carry ``success`` explicitly. Object shapes use ``omit_defaults`` so that fields the
original tagged ``omitempty`` disappear when empty, exactly like the Go service's JSON.
"""
