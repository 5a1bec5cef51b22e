// The bus's layout in Redis: one stream of batches, and an epoch key that tells a node whether the
// stream it was reading is still the same one (a Redis restarted without persistence, or a
// deleted key, starts a new stream whose IDs say nothing about what a node had read), and a
// doorbell: a one-entry stream that every XADD rings, on which readers block, so that waking up
// costs a few bytes instead of a batch (a blocking XREAD on the stream itself returns an entry,
// perhaps the reader's own).
//
// An entry is one publisher's batch: n = node id (a node skips its own: its clients already had
// them), p = publisher (one per connectBus: with --workers every worker publishes under the
// node's id), s = the publisher's sequence number (1, 2, …; a retried XADD keeps its number, so
// a reader drops the duplicate of an XADD whose reply was lost, and a jump is a loss), f = whole
// wire-format frames, back to back, as local clients sent them.

/** Field names, as Buffers: entries are written and read as binary, never decoded as text. */
export const FIELD = { node: 'n', publisher: 'p', sequence: 's', frames: 'f' } as const;

export function epochKey(stream: string): string {
  return `${stream}:epoch`;
}

export function bellKey(stream: string): string {
  return `${stream}:bell`;
}

/**
 * One atomic read: the stream's first entry (to see whether retention dropped entries past the
 * reader's position), the epoch, and up to COUNT entries after the position. Atomic, because a
 * trim between a read and a separate check could hide a loss or fake one.
 *
 * KEYS: stream, epoch key, doorbell. ARGV: last id ('$' = the end, at join), count, known epoch ('' at
 * join), epoch to set when the key is missing, '1' to want entries-added (lag accounting), the
 * reader's node id (its own entries come back without fields), a byte budget for the reply.
 * Returns {epoch, last id used, gap 0|1, reset 0|1, XLEN, entries-added or -1, entries, the
 * doorbell's last ID (block on it from there), more 0|1 (entries left after these)}.
 */
export const READ_SCRIPT = `
local stream, epochKey, bellKey = KEYS[1], KEYS[2], KEYS[3]
local last, count, known, candidate = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local wantAdded, own, maxBytes = ARGV[5] == '1', ARGV[6], tonumber(ARGV[7])
local more = 0
local epoch = redis.call('GET', epochKey)
if not epoch then
  redis.call('SET', epochKey, candidate)
  epoch = candidate
end
local reset = 0
if known ~= '' and epoch ~= known then
  reset = 1
  last = '0-0'
end
local exists = redis.call('EXISTS', stream) == 1
if last == '$' then
  last = '0-0'
  if exists then
    local top = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
    if #top > 0 then last = top[1][1] end
  end
end
local gap = 0
local len = 0
local entries = {}
if exists then
  len = redis.call('XLEN', stream)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if last ~= '0-0' and #first > 0 then
    local lm, ls = string.match(last, '^(%d+)-(%d+)$')
    local fm, fs = string.match(first[1][1], '^(%d+)-(%d+)$')
    lm, ls, fm, fs = tonumber(lm), tonumber(ls), tonumber(fm), tonumber(fs)
    if lm < fm or (lm == fm and ls < fs) then gap = 1 end
  end
  entries = redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', count)
  if #entries == count then more = 1 end
  -- The reader's own node's entries come back as bare IDs: its clients had those frames already,
  -- and sending them back would double what every node reads. Past maxBytes the reply stops
  -- (large frames must not make one reply of COUNT × 1 MiB).
  local bytes = 0
  for i = 1, #entries do
    local fields = entries[i][2]
    local mine = false
    for j = 1, #fields, 2 do
      if fields[j] == 'n' and fields[j + 1] == own then mine = true end
    end
    if mine then
      entries[i] = {entries[i][1], {}}
    else
      for j = 1, #fields, 2 do bytes = bytes + #fields[j + 1] end
    end
    if bytes >= maxBytes and i < #entries then
      for k = #entries, i + 1, -1 do entries[k] = nil end
      more = 1
      break
    end
  end
end
local added = -1
if wantAdded or gap == 1 or reset == 1 then
  if exists then
    local info = redis.call('XINFO', 'STREAM', stream)
    for i = 1, #info, 2 do
      if info[i] == 'entries-added' then added = info[i + 1] end
    end
  else
    added = 0
  end
end
local rang = redis.call('XREVRANGE', bellKey, '+', '-', 'COUNT', 1)
local bell = '0-0'
if #rang > 0 then bell = rang[1][1] end
return {epoch, last, gap, reset, len, added, entries, bell, more}
`;

export interface ReadReply {
  epoch: string;
  lastId: string;
  /** Retention dropped entries past the position: the reader missed some. */
  gap: boolean;
  /** The epoch changed: a new stream, read from its start. */
  reset: boolean;
  length: number;
  /** XINFO's entries-added (Redis ≥ 7), or -1 when not asked or not known. */
  added: number;
  entries: RawEntry[];
  bellId: string;
  /** Cut short (COUNT or the byte budget): read again at once. */
  more: boolean;
}

/** [id, [field, value, field, value, …]] as the client returns it with Buffers. */
export type RawEntry = [Buffer, Buffer[]];

export function parseReadReply(reply: unknown): ReadReply {
  const r = reply as [Buffer, Buffer, number, number, number, number, RawEntry[], Buffer, number];
  return {
    epoch: r[0].toString('latin1'),
    lastId: r[1].toString('latin1'),
    gap: r[2] === 1,
    reset: r[3] === 1,
    length: r[4],
    added: r[5],
    entries: r[6],
    bellId: r[7].toString('latin1'),
    more: r[8] === 1,
  };
}

export interface Entry {
  node: string;
  publisher: string;
  sequence: number;
  frames: Buffer;
}

/** An entry's fields, or null if it is not one of mob's (another program wrote to the key). */
export function parseEntry(fields: Buffer[]): Entry | null {
  let node: string | null = null;
  let publisher: string | null = null;
  let sequence = NaN;
  let frames: Buffer | null = null;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    if (name.length !== 1) continue;
    const value = fields[i + 1]!;
    switch (name[0]) {
      case 0x6e: node = value.toString('latin1'); break; // n
      case 0x70: publisher = value.toString('latin1'); break; // p
      case 0x73: sequence = Number(value.toString('latin1')); break; // s
      case 0x66: frames = value; break; // f
    }
  }
  if (node === null || publisher === null || frames === null || !Number.isSafeInteger(sequence) || sequence < 1) return null;
  return { node, publisher, sequence, frames };
}
