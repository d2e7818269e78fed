"""Media object storage (local directory or S3/MinIO through obstore), key rules and the media routes.

For other features (WhatsApp ingestion, sending media): ``state.storage`` is a ``MediaStorage``;
build keys with ``build_key(account_id, folder, filename)``, where the file name carries a random part
(``secret_filename(stem, ext)``; the media proxy is public, so a derivable key is a readable one), store with
``await state.storage.put(key, data, mime)``, keep ``proxy_url(key)`` in the database, and read back with
``key_from_proxy_url(url)`` + ``await state.storage.read(key)``.
"""

from clarin.storage.backend import MediaStorage
from clarin.storage.keys import build_key, content_type_for, key_from_proxy_url, proxy_url, secret_filename

__all__ = ["MediaStorage", "build_key", "content_type_for", "key_from_proxy_url", "proxy_url", "secret_filename"]
