-- The 猜你想问 choices a clarify offered (JSON array of FAQ ids), so the
-- agent who takes over sees what the bot already suggested.
ALTER TABLE decisions ADD COLUMN choices TEXT;
