"""Annotations chute puts on templates, read by its own runtimes and ignored by Argo."""

#: A memoize key for a step that reads input artifacts. Argo's ``memoize`` key cannot see an
#: artifact's content, so the SDK does not emit ``memoize`` for such steps; the local engine
#: reads this key instead and adds the input artifacts' content digests to it.
LOCAL_CACHE_KEY = "chute.dev/cache-key"

#: The cache (Argo's ConfigMap name) entries under :data:`LOCAL_CACHE_KEY` are kept in.
LOCAL_CACHE_NAME = "chute-cache"
