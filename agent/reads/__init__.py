"""Read services for the console and the CLI: each checks the actor's role, then runs a query.

The SQL lives in ``storage.queries``; these functions decide who may read what, so a view that
forgot to hide a page still cannot show a role data it may not see.
"""
