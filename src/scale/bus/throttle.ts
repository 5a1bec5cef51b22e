// A warning that may repeat for as long as a fault lasts (a stream key of the wrong type, an
// outage past the backlog's bound, a foreign program writing to the stream): the first is logged,
// then at most one per interval with how many were left out, so a fault never floods the log.
export class ThrottledLine {
  private last = -Infinity;
  private suppressed = 0;

  constructor(private readonly intervalMs = 30_000) {}

  emit(write: (line: string) => void, line: string): void {
    const now = Date.now();
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    write(this.suppressed > 0 ? `${line} (and ${this.suppressed} more like it since the last)` : line);
    this.last = now;
    this.suppressed = 0;
  }
}
