-- The leader's sweeps read overdue challenges by status and deadline, and stale
-- created ones by status and issue time, without scanning every open challenge.
CREATE INDEX challenges_status_deadline ON challenges (status, deadline_ms);
CREATE INDEX challenges_status_issued ON challenges (status, issued_at_ms);
