-- A shopper handed off while no agent could answer leaves a message and how
-- to reach them; such tickets come first in the queue.
ALTER TABLE tickets ADD COLUMN contact_kind TEXT;
ALTER TABLE tickets ADD COLUMN contact TEXT;
ALTER TABLE tickets ADD COLUMN message_left_at INTEGER;
