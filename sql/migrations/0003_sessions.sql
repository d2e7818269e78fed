-- Per-session revocation (issue 12): one row per login. A token names its row in the `sid` claim; logout
-- revokes that row only, a password change revokes every other row of the user, and admin actions still
-- end every session at once through users.token_version. switch-account keeps the same session.
-- Rows past expires_at are deleted in bounded batches (clarin/auth/revocation.py) and per user at login.
CREATE TABLE user_sessions (
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CONSTRAINT user_sessions_pkey PRIMARY KEY (id),
    CONSTRAINT user_sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX idx_user_sessions_user ON user_sessions (user_id);
CREATE INDEX idx_user_sessions_expires ON user_sessions (expires_at);
