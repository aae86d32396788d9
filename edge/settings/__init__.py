"""The typed settings model: grid-code profiles, function ownership, commissioning lock, changes.

Import from here: ``load_file``/``load_default`` give a validated ``Settings``; ``energize_lock`` says
whether the daemon may energize; ``apply_remote_change``/``apply_local_change`` change settings;
``SettingsError`` is the one error type.
"""

from edge.settings.audit import AuditRecord, append_audit, read_audit
from edge.settings.changes import (
    apply_local_change,
    apply_remote_change,
    decode_remote_change,
    get_value,
    is_protected,
    is_remote_editable,
)
from edge.settings.commissioning import energize_lock, lock_reasons
from edge.settings.errors import SettingsError, SettingsFileError
from edge.settings.load import from_builtins, grid_profile, load_default, load_file, load_text
from edge.settings.model import Settings
from edge.settings.profiles import ResolvedProfile, available_profiles, load_profile

__all__ = [
    "AuditRecord",
    "ResolvedProfile",
    "Settings",
    "SettingsError",
    "SettingsFileError",
    "append_audit",
    "apply_local_change",
    "apply_remote_change",
    "available_profiles",
    "decode_remote_change",
    "energize_lock",
    "from_builtins",
    "get_value",
    "grid_profile",
    "is_protected",
    "is_remote_editable",
    "load_default",
    "load_file",
    "load_profile",
    "load_text",
    "lock_reasons",
    "read_audit",
]
