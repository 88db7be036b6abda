"""Read services for the console and the CLI: each checks the actor's role, then runs a query.

Like every service they take ``(platform, actor, ...)`` and open their own read transaction.
The SQL lives in ``storage.queries``; these functions decide who may read what, so a view that
forgot to hide a page still cannot show a role data it may not see. Lists come back as a
``Page`` (``agent.reads.paging``) that says how many match in all and where the next one starts.
"""
