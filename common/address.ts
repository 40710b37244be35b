/** `host:port` as a URL or a dialer wants it: an IPv6 host in brackets (`[::1]:5000`). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
