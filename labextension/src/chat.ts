/**
 * The conversation view of one notebook: turns from the sidebar and from `%%agent`
 * cells, an input box, Send and Stop, approvals, and token/cost totals; the
 * conversation the kernel continues, shown again after a page reload or a kernel
 * restart; each turn's changes with a Revert button; and the MCP servers and their tools.
 */

import { Widget } from '@lumino/widgets';

import type { BridgeStatus, NotebookBridge } from './bridge';
import { ChangesView, revertReport } from './changes';
import { McpView } from './mcp';
import {
  AgentEvent,
  AgentEventMsg,
  ApprovalRequestEvent,
  approvalMsg,
  ChangesMsg,
  McpStatusMsg,
  Decision,
  HistoryMsg,
  RevertResultMsg,
  StateMsg,
  stopMsg,
  TurnBlock,
  TurnSource
} from './protocol';
import {
  el,
  errorLine,
  imagesFromBlocks,
  MarkdownBlock,
  MarkdownRender,
  noticeLine,
  textFromBlocks,
  ThinkingBlock,
  ToolLine,
  turnBlockNode
} from './render';
import { addUsage, formatUsage, inputTokens, UsageNumbers, zeroUsage } from './usage';

/** How long Stop waits for `turn_end` before interrupting the kernel. */
export const STOP_GRACE_MS = 2000;

const STATUS_TEXT: Record<BridgeStatus, string> = {
  'no-kernel': 'No kernel',
  unsupported: 'nbagent needs a Python kernel',
  waiting: 'nbagent loads with your first message',
  connected: 'Connected',
  incompatible: 'nbagent in the kernel is another version'
};

/** The status line, with what to do about a version mismatch. */
function statusText(bridge: NotebookBridge): string {
  const mismatch = bridge.incompatibility;
  if (!mismatch) {
    return STATUS_TEXT[bridge.status];
  }
  const kernel = mismatch.kernelVersion;
  const older = typeof kernel === 'number' && kernel < mismatch.pageVersion;
  const which = mismatch.nbagent ? `nbagent ${mismatch.nbagent}` : 'nbagent';
  return (
    `${which} in the kernel speaks protocol v${String(kernel)}, ` +
    `this page v${mismatch.pageVersion}: ` +
    (older ? 'restart the kernel to load the installed nbagent.' : 'reload the page.')
  );
}

/** Where a turn came from, shown above its prompt (the sidebar's own need no label). */
const SOURCE_LABEL: Record<TurnSource, string> = {
  cell: '%%agent',
  panel: 'chat panel',
  sidebar: ''
};

/** One turn: the prompt, then the assistant's text, thinking, tools and notices. */
class TurnView {
  readonly node = el('div', 'jp-nbagent-turn');
  turnId: string | null;
  ended = false;

  constructor(
    readonly source: TurnSource,
    turnId: string | null,
    private readonly _render: MarkdownRender,
    private readonly _decide: (callId: string, decision: Decision) => boolean
  ) {
    this.turnId = turnId;
    this.node.dataset.source = source;
    this.node.appendChild(this._body);
  }

  setPrompt(prompt: string): void {
    if (this._prompt) {
      return;
    }
    this._prompt = el('div', 'jp-nbagent-message-user');
    const label = SOURCE_LABEL[this.source] ?? this.source;
    if (label) {
      this._prompt.appendChild(el('span', 'jp-nbagent-source', label));
    }
    this._prompt.appendChild(el('div', 'jp-nbagent-prompt', prompt));
    this.node.prepend(this._prompt);
  }

  handle(event: AgentEvent): void {
    switch (event.type) {
      case 'turn_start':
        this.setPrompt(event.prompt);
        break;
      case 'text_delta':
        this._textBlock().append(event.text);
        break;
      case 'thinking_delta':
        this._thinkingBlock().append(event.text);
        break;
      case 'tool_call_start':
        this._tool(event.id, event.name);
        break;
      case 'tool_input_delta':
        break;
      case 'tool_call':
        this._tool(event.call.id, event.call.name).setInput(event.call.input);
        break;
      case 'tool_result': {
        const tool = this._tool(event.call.id, event.call.name);
        const text = textFromBlocks(event.output.content);
        tool.setResult({
          summary: event.output.summary || text.split('\n', 1)[0].slice(0, 120),
          isError: event.output.is_error,
          detail: text,
          images: imagesFromBlocks(event.output.content),
          elapsed: event.elapsed
        });
        this._retireApproval(event.call.id);
        break;
      }
      case 'approval_request':
        this._approval(event);
        break;
      case 'notice':
        this._add(noticeLine(event.text, event.level));
        break;
      case 'usage':
        this._usage = addUsage(this._usage, event);
        break;
      case 'error':
        this.addError(event.message);
        break;
      case 'turn_end':
        this.end(event.stop_reason, event.message);
        break;
    }
  }

  addError(text: string): void {
    this._errors.add(text.trim());
    this._add(errorLine(text));
  }

  /** Blocks of a turn from the kernel's history (a finished turn, shown again). */
  restore(blocks: ReadonlyArray<TurnBlock>): void {
    this.ended = true;
    this.node.classList.add('jp-mod-restored');
    for (const block of blocks) {
      this._add(turnBlockNode(block, this._render).node);
    }
  }

  end(stopReason: string, message = ''): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    void this._text?.flush();
    for (const callId of [...this._approvals.keys()]) {
      this._retireApproval(callId);
    }
    for (const tool of this._tools.values()) {
      tool.cancel('not run');
    }
    const parts: string[] = [];
    if (stopReason && stopReason !== 'end_turn') {
      parts.push(stopReason.replace(/_/g, ' '));
    }
    // turn_end often repeats the error just shown.
    if (message && !this._errors.has(message.trim())) {
      parts.push(message);
    }
    if (inputTokens(this._usage) || this._usage.output_tokens) {
      parts.push(formatUsage(this._usage));
    }
    if (parts.length) {
      this.node.appendChild(el('div', 'jp-nbagent-turn-footer', parts.join(' · ')));
    }
  }

  private _add(node: HTMLElement): void {
    this._body.appendChild(node);
    this._last = null;
  }

  private _textBlock(): MarkdownBlock {
    if (!(this._last instanceof MarkdownBlock)) {
      void this._text?.flush();
      this._text = new MarkdownBlock(this._render);
      this._body.appendChild(this._text.node);
      this._last = this._text;
    }
    return this._last;
  }

  private _thinkingBlock(): ThinkingBlock {
    if (!(this._last instanceof ThinkingBlock)) {
      const block = new ThinkingBlock();
      this._body.appendChild(block.node);
      this._last = block;
    }
    return this._last;
  }

  private _tool(id: string, name: string): ToolLine {
    let tool = this._tools.get(id);
    if (!tool) {
      tool = new ToolLine(name);
      this._tools.set(id, tool);
      this._add(tool.node);
    }
    return tool;
  }

  private _approval(event: ApprovalRequestEvent): void {
    const box = el('div', 'jp-nbagent-approval');
    box.appendChild(
      el('div', 'jp-nbagent-approval-title', `Allow ${event.call.name} (${event.category})?`)
    );
    box.appendChild(
      el('pre', 'jp-nbagent-approval-input', JSON.stringify(event.call.input, null, 2))
    );
    const buttons = el('div', 'jp-nbagent-approval-buttons');
    const choices: [Decision, string, string][] = [
      ['allow', 'Allow once', 'jp-nbagent-approve-allow jp-mod-accept'],
      ['always', 'Always', 'jp-nbagent-approve-always'],
      ['deny', 'Deny', 'jp-nbagent-approve-deny jp-mod-reject']
    ];
    for (const [decision, label, cls] of choices) {
      const button = el('button', `jp-Button jp-nbagent-button ${cls}`, label);
      button.type = 'button';
      button.addEventListener('click', () => {
        if (this._decide(event.call.id, decision)) {
          this._retireApproval(event.call.id, label);
        } else {
          this._add(noticeLine('Not connected to the kernel: the answer was not sent.', 'warning'));
        }
      });
      buttons.appendChild(button);
    }
    box.appendChild(buttons);
    this._approvals.set(event.call.id, box);
    this._add(box);
  }

  private _retireApproval(callId: string, decided?: string): void {
    const box = this._approvals.get(callId);
    if (!box) {
      return;
    }
    this._approvals.delete(callId);
    box.querySelectorAll('button').forEach(b => (b.disabled = true));
    box.classList.add('jp-mod-answered');
    if (decided) {
      box.appendChild(el('div', 'jp-nbagent-approval-answer', decided));
    }
  }

  private _body = el('div', 'jp-nbagent-message-assistant');
  private _prompt: HTMLElement | null = null;
  private _last: MarkdownBlock | ThinkingBlock | null = null;
  private _text: MarkdownBlock | null = null;
  private _tools = new Map<string, ToolLine>();
  private _approvals = new Map<string, HTMLElement>();
  private _usage: UsageNumbers = zeroUsage();
  private _errors = new Set<string>();
}

/** The chat for one notebook; the sidebar shows the one of the current notebook. */
export class ChatView extends Widget {
  constructor(
    readonly bridge: NotebookBridge,
    private readonly _render: MarkdownRender
  ) {
    super();
    this.addClass('jp-nbagent-chat');
    this._build();
    bridge.agentEvent.connect(this._onAgentEvent, this);
    bridge.stateMessage.connect(this._onState, this);
    bridge.historyMessage.connect(this._onHistory, this);
    bridge.changesMessage.connect(this._onChanges, this);
    bridge.mcpStatusMessage.connect(this._onMcpStatus, this);
    bridge.revertResult.connect(this._onRevertResult, this);
    bridge.statusChanged.connect(this._onStatus, this);
    bridge.context.pathChanged.connect(this._updateTitle, this);
    this._updateTitle();
    this._onStatus(bridge, bridge.status);
  }

  get busy(): boolean {
    return this._sending || this._running.size > 0;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearTimeout(this._stopTimer);
    this.bridge.agentEvent.disconnect(this._onAgentEvent, this);
    this.bridge.stateMessage.disconnect(this._onState, this);
    this.bridge.historyMessage.disconnect(this._onHistory, this);
    this.bridge.changesMessage.disconnect(this._onChanges, this);
    this.bridge.mcpStatusMessage.disconnect(this._onMcpStatus, this);
    this.bridge.revertResult.disconnect(this._onRevertResult, this);
    this.bridge.statusChanged.disconnect(this._onStatus, this);
    this.bridge.context.pathChanged.disconnect(this._updateTitle, this);
    super.dispose();
  }

  focusInput(): void {
    this._input.focus();
  }

  /** Send the input box's text as a sidebar turn. */
  async send(): Promise<void> {
    const prompt = this._input.value.trim();
    if (!prompt || this.busy) {
      return;
    }
    const status = this.bridge.status;
    if (status === 'no-kernel' || status === 'unsupported' || status === 'incompatible') {
      this._log.appendChild(noticeLine(statusText(this.bridge), 'warning'));
      return;
    }
    this._input.value = '';
    const turn = this._newTurn('sidebar', null);
    turn.setPrompt(prompt);
    this._pending = turn;
    this._sending = true;
    this._update();
    let errorShown = false;
    const outcome = await this.bridge.runSidebarTurn(prompt, {
      onStarted: () => (this._executing = true),
      onError: text => {
        errorShown = true;
        turn.addError(text);
      }
    });
    this._sending = false;
    this._executing = false;
    if (this._pending === turn) {
      this._pending = null;
    }
    if (!outcome.ok && !errorShown) {
      turn.addError(outcome.error ?? 'The request failed.');
    }
    // The execution is over, so is the turn, whether or not turn_end made it here.
    this._endTurn(turn, outcome.ok ? '' : 'error');
    this._update();
  }

  /**
   * Ask the kernel to stop; interrupt it if the turn has not ended in STOP_GRACE_MS.
   * Only a turn known to be running is interrupted: a prompt still queued behind the
   * user's own cell must not cost them that cell.
   */
  stop(): void {
    const sent = this.bridge.sendControl(stopMsg());
    window.clearTimeout(this._stopTimer);
    const turnRunning = () => this._running.size > 0 || this._executing;
    if (!sent) {
      if (turnRunning()) {
        void this.bridge.interrupt();
      }
      return;
    }
    this._stopTimer = window.setTimeout(() => {
      if (turnRunning()) {
        void this.bridge.interrupt();
      }
    }, STOP_GRACE_MS);
  }

  private _build(): void {
    const header = el('div', 'jp-nbagent-header');
    header.appendChild(this._title);
    header.appendChild(this._status);
    this.node.appendChild(header);
    this._log.appendChild(this._history);
    this.node.appendChild(this._log);
    this.node.appendChild(this._changes.node);
    this.node.appendChild(this._mcp.node);
    const footer = el('div', 'jp-nbagent-footer');
    footer.appendChild(this._usageNode);
    const composer = el('div', 'jp-nbagent-composer');
    this._input.placeholder = 'Ask nbagent… (Enter to send, Shift+Enter for a new line)';
    this._input.rows = 3;
    this._input.addEventListener('keydown', event => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send();
      }
    });
    composer.appendChild(this._input);
    const buttons = el('div', 'jp-nbagent-composer-buttons');
    this._sendButton.type = 'button';
    this._sendButton.addEventListener('click', () => void this.send());
    this._stopButton.type = 'button';
    this._stopButton.addEventListener('click', () => this.stop());
    buttons.appendChild(this._sendButton);
    buttons.appendChild(this._stopButton);
    composer.appendChild(buttons);
    footer.appendChild(composer);
    this.node.appendChild(footer);
    this._usageNode.textContent = formatUsage(this._totals);
    this._update();
  }

  private _newTurn(source: TurnSource, turnId: string | null): TurnView {
    const turn = new TurnView(source, turnId, this._render, (callId, decision) =>
      this.bridge.sendControl(approvalMsg(callId, decision))
    );
    if (turnId) {
      this._turns.set(turnId, turn);
    }
    this._log.appendChild(turn.node);
    return turn;
  }

  private _onAgentEvent(_sender: NotebookBridge, msg: AgentEventMsg): void {
    const stick = this._nearBottom();
    let turn = this._turns.get(msg.turn_id);
    if (!turn) {
      if (msg.source === 'sidebar' && this._pending && this._pending.turnId === null) {
        turn = this._pending;
        turn.turnId = msg.turn_id;
        this._turns.set(msg.turn_id, turn);
      } else {
        turn = this._newTurn(msg.source, msg.turn_id);
      }
    }
    const event = msg.event;
    if (event.type === 'turn_start') {
      this._running.add(msg.turn_id);
    } else if (event.type === 'usage') {
      this._totals = addUsage(this._totals, event);
      this._usageNode.textContent = formatUsage(this._totals);
    }
    if (event.type === 'turn_end') {
      this._endTurn(turn, event.stop_reason, event.message);
    } else {
      turn.handle(event);
    }
    this._update();
    if (stick) {
      this._log.scrollTop = this._log.scrollHeight;
    }
  }

  private _endTurn(turn: TurnView, stopReason: string, message = ''): void {
    turn.end(stopReason, message);
    if (turn.turnId) {
      this._running.delete(turn.turnId);
    }
    if (!this.busy) {
      window.clearTimeout(this._stopTimer);
    }
  }

  private _onState(_sender: NotebookBridge, msg: StateMsg): void {
    if (msg.usage) {
      // The kernel's session totals replace the sum of the events seen here.
      this._totals = addUsage(zeroUsage(), msg.usage);
      this._usageNode.textContent = formatUsage(this._totals);
    }
    if (!msg.busy) {
      // The session is idle: any turn still open here lost its turn_end.
      for (const id of this._running) {
        this._turns.get(id)?.end('');
      }
      this._running.clear();
      this._update();
    }
  }

  /**
   * The conversation the kernel continues, after each register. A fresh view (a page
   * reload) shows it; a view whose turns are already shown keeps them, and only says
   * so when the kernel holds none of them any more (restarted with restore off).
   */
  private _onHistory(_sender: NotebookBridge, msg: HistoryMsg): void {
    const live = this._log.querySelector(':scope > .jp-nbagent-turn') !== null;
    if (live || this._pending) {
      if (msg.entries.length === 0) {
        this._log.appendChild(
          noticeLine('The kernel holds none of the turns above: your next message starts anew.')
        );
      }
      return;
    }
    const nodes: HTMLElement[] = [];
    if (msg.omitted) {
      nodes.push(
        el('div', 'jp-nbagent-history-omitted', `${msg.omitted} earlier messages not shown`)
      );
    }
    let turn: TurnView | null = null;
    for (const entry of msg.entries) {
      if (entry.kind === 'prompt') {
        turn = new TurnView('sidebar', null, this._render, () => false);
        turn.setPrompt(entry.text);
        turn.restore([]);
        nodes.push(turn.node);
      } else {
        if (!turn) {
          turn = new TurnView('sidebar', null, this._render, () => false);
          nodes.push(turn.node);
        }
        turn.restore(entry.blocks);
      }
    }
    if (msg.entries.length && msg.origin === 'saved') {
      nodes.push(
        noticeLine(
          'The conversation saved with this notebook (.nbagent/): your next message continues it.'
        )
      );
    }
    this._history.replaceChildren(...nodes);
    this._log.scrollTop = this._log.scrollHeight;
  }

  private _onChanges(_sender: NotebookBridge, msg: ChangesMsg): void {
    this._changes.update(msg.turns);
  }

  private _onMcpStatus(_sender: NotebookBridge, msg: McpStatusMsg): void {
    this._mcp.update(msg.servers);
  }

  private _onRevertResult(_sender: NotebookBridge, msg: RevertResultMsg): void {
    this._changes.reverted(msg);
    const stick = this._nearBottom();
    this._log.appendChild(revertReport(msg));
    if (stick) {
      this._log.scrollTop = this._log.scrollHeight;
    }
  }

  private _revert(turn: number): boolean {
    if (this.bridge.revert(turn)) {
      return true;
    }
    this._log.appendChild(
      noticeLine('Not connected to the kernel: the revert was not sent.', 'warning')
    );
    return false;
  }

  private _onStatus(_sender: NotebookBridge, status: BridgeStatus): void {
    this._status.textContent = statusText(this.bridge);
    this._status.dataset.status = status;
    if (status !== 'connected' && this._running.size > 0) {
      // The kernel restarted or unloaded nbagent mid-turn.
      for (const id of this._running) {
        this._turns.get(id)?.end('interrupted', 'the kernel went away');
      }
      this._running.clear();
    }
    this._update();
  }

  private _updateTitle(): void {
    const path = this.bridge.path;
    this._title.textContent = path.split('/').pop() ?? path;
    this._title.title = path;
  }

  private _update(): void {
    const status = this.bridge.status;
    const usable = status === 'waiting' || status === 'connected';
    this._sendButton.disabled = !usable || this.busy;
    this._stopButton.disabled = !this.busy;
    this._changes.setBusy(this.busy);
    this.node.classList.toggle('jp-mod-busy', this.busy);
  }

  private _nearBottom(): boolean {
    const log = this._log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  private _title = el('div', 'jp-nbagent-title');
  private _status = el('div', 'jp-nbagent-status');
  private _log = el('div', 'jp-nbagent-log');
  /** The restored history: the first child of the log, replaced by each history. */
  private _history = el('div', 'jp-nbagent-history');
  private _changes = new ChangesView(turn => this._revert(turn));
  private _mcp = new McpView();
  private _usageNode = el('div', 'jp-nbagent-usage');
  private _input = el('textarea', 'jp-nbagent-input');
  private _sendButton = el(
    'button',
    'jp-Button jp-mod-styled jp-mod-accept jp-nbagent-send',
    'Send'
  );
  private _stopButton = el('button', 'jp-Button jp-mod-styled jp-mod-warn jp-nbagent-stop', 'Stop');
  private _turns = new Map<string, TurnView>();
  private _running = new Set<string>();
  private _pending: TurnView | null = null;
  private _sending = false;
  private _executing = false;
  private _stopTimer = 0;
  private _totals: UsageNumbers = zeroUsage();
}
