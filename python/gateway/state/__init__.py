"""What every worker and instance must agree on, and how a call is admitted against it: key limits and budget
counters kept in each process or shared through Redis (admission.py), the Redis connection and its scripts
(redis.py, lua.py)."""
