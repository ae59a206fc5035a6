"""The dashboard at ``/``: a page for people, fed by the REST routes and one event stream."""
