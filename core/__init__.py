"""The ground floor every app stands on; it imports no app and no project module.

jobs (the abstract Job and its task base), queue (enqueue after commit, routed by
name), live (channel-group events and the "history then live" consumer), env
(typed settings reads), api (the REST error shape) and rpc (request/reply with the
long-running workers over Redis).
"""
