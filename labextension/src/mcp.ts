/**
 * The MCP servers in the chat: each configured server, its state and its tools, as
 * the kernel's `mcp_status` message lists them (what `%agent mcp` prints). The
 * kernel sends it when a turn ends and after a register, only while servers are
 * configured, so the section stays hidden in sessions without any.
 */

import type { McpServerStatus } from './protocol';
import { el } from './render';

/** "2 servers · 1 running" */
export function serversSummary(servers: ReadonlyArray<McpServerStatus>): string {
  const running = servers.filter(s => s.state === 'running').length;
  const count = `${servers.length} ${servers.length === 1 ? 'server' : 'servers'}`;
  return `MCP servers: ${count} · ${running} running`;
}

export class McpView {
  /** Collapsed until opened; hidden while no server is configured. */
  readonly node = el('details', 'jp-nbagent-mcp');

  constructor() {
    this.node.appendChild(this._summary);
    this.node.appendChild(this._list);
    this.node.hidden = true;
  }

  /** The kernel's list replaces the one shown. */
  update(servers: ReadonlyArray<McpServerStatus>): void {
    this.node.hidden = servers.length === 0;
    this._summary.textContent = serversSummary(servers);
    this._list.replaceChildren(...servers.map(server => this._item(server)));
  }

  private _item(server: McpServerStatus): HTMLElement {
    const item = el('div', 'jp-nbagent-mcp-server');
    item.dataset.server = server.name;
    item.dataset.state = server.state;
    const head = el('div', 'jp-nbagent-mcp-head');
    head.appendChild(el('span', 'jp-nbagent-mcp-name', server.name));
    head.appendChild(el('span', 'jp-nbagent-mcp-state', server.state));
    const origin = [server.transport, `from ${server.source}`].filter(Boolean).join(', ');
    head.appendChild(el('span', 'jp-nbagent-mcp-origin', `(${origin})`));
    item.appendChild(head);
    const why = server.error ?? server.detail;
    if (why) {
      const cls = server.error ? 'jp-nbagent-mcp-detail jp-mod-error' : 'jp-nbagent-mcp-detail';
      item.appendChild(el('div', cls, why));
    }
    if (server.tools.length) {
      const tools = el('ul', 'jp-nbagent-mcp-tools');
      for (const tool of server.tools) {
        const row = el('li', 'jp-nbagent-mcp-tool');
        row.appendChild(el('code', 'jp-nbagent-mcp-tool-name', tool.name));
        row.appendChild(el('span', 'jp-nbagent-mcp-tool-category', tool.category));
        tools.appendChild(row);
      }
      item.appendChild(tools);
    }
    return item;
  }

  private _summary = el('summary', 'jp-nbagent-mcp-summary');
  private _list = el('div', 'jp-nbagent-mcp-list');
}
