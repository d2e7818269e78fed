"""WhatsApp: the driver contract and its two drivers, the device pool (one owner per device), devices routes.

Importing the package first imports :mod:`clarin.whatsapp.proto`, the single place neonize is loaded
(it undoes neonize's import-time logging configuration).
"""

from clarin.whatsapp import proto as proto
