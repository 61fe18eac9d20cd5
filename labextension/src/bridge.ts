/**
 * The frontend end of the nbagent comms for one open notebook (docs/protocol.md).
 *
 * The frontend speaks first, so a kernel nobody watches (nbclient, nbconvert) never
 * opens a comm. When this notebook gets a Python kernel (and again after a restart),
 * the bridge asks the kernel to listen (a silent `listen()` in `user_expressions`,
 * which needs nbagent installed, not loaded), then opens `nbagent.control`
 * (control.ts) on its own subshell with a register: a busy kernel only reads
 * frontend messages on a subshell, on a comm the frontend opened. The bridge creates
 * that subshell once per kernel process and never deletes it: messages to a deleted
 * subshell are dropped, and a delete_subshell (control channel) can overtake the
 * goodbye comm_close still queued on it, leaving the kernel with a stale client.
 *
 * Events: the kernel answers the register with a hello naming this client, opening
 * `nbagent.events` (or on it, when another client opened it first), and only sends
 * on it. Events are read from the connection's iopub stream, which works whether or
 * not this connection is the one JupyterLab lets handle comms for the kernel (only
 * the first connection per kernel does). The comm target is still registered so
 * JupyterLab does not close the comm as unknown.
 */

import type { DocumentRegistry } from '@jupyterlab/docregistry';
import type { INotebookModel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { UUID } from '@lumino/coreutils';
import type { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { ControlChannel } from './control';
import { applyOp, OpError } from './notebookOps';
import {
  AgentEventMsg,
  ChangesMsg,
  McpStatusMsg,
  ControlMsg,
  EVENTS_TARGET,
  HistoryMsg,
  LISTEN_EXPRESSION,
  parseKernelMsg,
  pathChangedMsg,
  PROTOCOL_VERSION,
  registerMsg,
  replyError,
  replyOk,
  RequestMsg,
  RevertResultMsg,
  revertMsg,
  StateMsg
} from './protocol';

/**
 * - `no-kernel`: the notebook has no kernel.
 * - `unsupported`: the kernel is not a Python kernel.
 * - `waiting`: a kernel, but not registered yet (handshake under way, or nbagent is
 *   not installed in the kernel's environment).
 * - `connected`: the control comm is open and the kernel's hello named this client.
 * - `incompatible`: nbagent in the kernel speaks another protocol version
 *   (`incompatibility` says which).
 */
export type BridgeStatus = 'no-kernel' | 'unsupported' | 'waiting' | 'connected' | 'incompatible';

/** The kernel's hello had another protocol version than this frontend's. */
export type Incompatibility = {
  kernelVersion: unknown;
  /** nbagent's version in the kernel, when its hello said (null: only `listen()` answered). */
  nbagent: string | null;
  pageVersion: number;
};

/** How long a sidebar prompt waits for a handshake it started itself. */
const HANDSHAKE_WAIT_MS = 5000;

export type ExecuteOutcome = { ok: boolean; error?: string };

export type ExecuteHooks = {
  /** The kernel began running the request (it may first wait behind a running cell). */
  onStarted?: () => void;
  /** An error or stderr text from the request. */
  onError?: (text: string) => void;
};

/** The nbagent link between one notebook document and its kernel. */
export class NotebookBridge implements IDisposable {
  /** Identifies this browser view of the notebook to the kernel. */
  readonly clientId = UUID.uuid4();

  constructor(readonly context: DocumentRegistry.IContext<INotebookModel>) {
    context.sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    // The session context announces its disposal while its kernel connection is
    // still open (the document context's own signal comes after): the last chance
    // to close the control comm.
    context.sessionContext.disposed.connect(this.dispose, this);
    context.disposed.connect(this.dispose, this);
    context.pathChanged.connect(this._onPathChanged, this);
    this._attach(context.sessionContext.session?.kernel ?? null);
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }
  get disposed(): ISignal<this, void> {
    return this._disposed;
  }
  get kernel(): Kernel.IKernelConnection | null {
    return this._kernel;
  }
  get status(): BridgeStatus {
    return this._status;
  }
  get statusChanged(): ISignal<this, BridgeStatus> {
    return this._statusChanged;
  }
  /** Set while the status is `incompatible`. */
  get incompatibility(): Incompatibility | null {
    return this._status === 'incompatible' ? this._incompatibility : null;
  }
  /** `agent_event` messages, from `%%agent` cells and the sidebar alike. */
  get agentEvent(): ISignal<this, AgentEventMsg> {
    return this._agentEvent;
  }
  /** `state` messages: session totals after each turn. */
  get stateMessage(): ISignal<this, StateMsg> {
    return this._stateMessage;
  }
  /** The conversation this client continues, sent after each register. */
  get historyMessage(): ISignal<this, HistoryMsg> {
    return this._historyMessage;
  }
  /** Each turn's changes (newest first), after every turn and revert. */
  get changesMessage(): ISignal<this, ChangesMsg> {
    return this._changesMessage;
  }
  /** The MCP servers, their state and tools, after every turn and register. */
  get mcpStatusMessage(): ISignal<this, McpStatusMsg> {
    return this._mcpStatusMessage;
  }
  /** The answer to this client's revert. */
  get revertResult(): ISignal<this, RevertResultMsg> {
    return this._revertResult;
  }
  /** The subshell the control comm lives on, once connected (null: main shell). */
  get subshellId(): string | null {
    return this._control?.subshellId ?? null;
  }
  /** The notebook path sent to the kernel: server-root relative, without a drive prefix. */
  get path(): string {
    return this.context.localPath;
  }

  /** Send approval / stop messages on the control comm; false if it is not open. */
  sendControl(msg: ControlMsg): boolean {
    return this._control?.send(msg) ?? false;
  }

  /**
   * Ask the kernel to undo turn `turn` (and the turns after it). It runs when the
   * kernel is free and answers with `revertResult`; false if not connected.
   */
  revert(turn: number): boolean {
    return this._status === 'connected' && this.sendControl(revertMsg(turn));
  }

  /**
   * Run a sidebar prompt as a silent execute_request on the main shell, loading the
   * extension first if needed.
   */
  async runSidebarTurn(prompt: string, hooks: ExecuteHooks = {}): Promise<ExecuteOutcome> {
    const kernel = this._kernel;
    if (!kernel) {
      return { ok: false, error: 'This notebook has no kernel.' };
    }
    if (this._status !== 'connected') {
      // Register first, so the turn's events reach this page (best effort: without
      // nbagent in the kernel the code below fails and says why).
      await this._connectAndWait(kernel);
    }
    const payload = JSON.stringify({ prompt, client_id: this.clientId, path: this.path });
    // %load_ext is idempotent, and a hello does not prove the extension is loaded
    // (nbagent.chat() or get_bridge() also say hello). __import__ rather than
    // `import ... as b`: a silent execution still runs in the user's namespace.
    const code = [
      "get_ipython().run_line_magic('load_ext', 'nbagent')",
      `__import__('nbagent.jupyter.bridge', fromlist=['sidebar_turn']).sidebar_turn(${JSON.stringify(payload)})`
    ].join('\n');
    return this._execute(kernel, code, hooks);
  }

  /** Interrupt the kernel (the fallback when `stop` is not honoured). */
  async interrupt(): Promise<void> {
    await this._kernel?.interrupt();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this.context.sessionContext.kernelChanged.disconnect(this._onKernelChanged, this);
    this.context.sessionContext.disposed.disconnect(this.dispose, this);
    this.context.disposed.disconnect(this.dispose, this);
    this.context.pathChanged.disconnect(this._onPathChanged, this);
    this._detach();
    this._disposed.emit();
    Signal.clearData(this);
  }

  /* ------------------------------ kernel link ------------------------------ */

  private _onKernelChanged(
    _sender: unknown,
    args: { newValue: Kernel.IKernelConnection | null }
  ): void {
    this._detach();
    this._attach(args.newValue);
  }

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    this._kernel = kernel;
    if (!kernel) {
      this._setStatus('no-kernel');
      return;
    }
    this._setStatus('waiting');
    kernel.registerCommTarget(EVENTS_TARGET, this._keepCommOpen);
    kernel.iopubMessage.connect(this._onIOPub, this);
    kernel.statusChanged.connect(this._onKernelStatus, this);
    this._connect(kernel);
  }

  private _detach(): void {
    const kernel = this._kernel;
    this._control?.close();
    this._control = null;
    this._eventsCommId = null;
    if (kernel && !kernel.isDisposed) {
      kernel.removeCommTarget(EVENTS_TARGET, this._keepCommOpen);
      kernel.iopubMessage.disconnect(this._onIOPub, this);
      kernel.statusChanged.disconnect(this._onKernelStatus, this);
    }
    this._subshell = null;
    this._needsHandshake = false;
    this._kernel = null;
  }

  /** Registered only so JupyterLab keeps the kernel's events comm open. */
  private _keepCommOpen = (): void => {
    /* events are read from iopub in _onIOPub */
  };

  private _onKernelStatus(kernel: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (kernel !== this._kernel) {
      return;
    }
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      // The kernel process is gone with its comms and subshells: register again
      // with the new process once it is ready.
      this._control?.abandon();
      this._control = null;
      this._eventsCommId = null;
      this._subshell = null;
      this._needsHandshake = status !== 'dead';
      if (this._status !== 'unsupported') {
        this._setStatus('waiting');
      }
    } else if (status === 'idle' && this._needsHandshake) {
      this._needsHandshake = false;
      this._connect(kernel);
    }
  }

  /** Run the handshake after any handshake already under way. */
  private _connect(kernel: Kernel.IKernelConnection): Promise<void> {
    this._handshake = this._handshake
      .then(() => this._register(kernel))
      .catch(err => {
        // A kernel that went away while connecting is not worth a report.
        if (kernel === this._kernel && !kernel.isDisposed) {
          console.warn('nbagent: handshake failed', err);
        }
      });
    return this._handshake;
  }

  /** Connect now and wait (a while) for the kernel's hello. */
  private async _connectAndWait(kernel: Kernel.IKernelConnection): Promise<void> {
    await this._connect(kernel);
    if (this._status === 'connected' || !this._control?.isOpen) {
      return;
    }
    await new Promise<void>(resolve => {
      const done = () => {
        window.clearTimeout(timer);
        this._statusChanged.disconnect(onStatus);
        resolve();
      };
      const onStatus = (_sender: this, status: BridgeStatus) => {
        if (status !== 'waiting') {
          done();
        }
      };
      const timer = window.setTimeout(done, HANDSHAKE_WAIT_MS);
      this._statusChanged.connect(onStatus);
    });
  }

  /**
   * The frontend's hello: ask the kernel to listen, then open the control comm on
   * this kernel's subshell with a register. The kernel's hello (`_onData`) completes it.
   */
  private async _register(kernel: Kernel.IKernelConnection): Promise<void> {
    if (kernel !== this._kernel || this._isDisposed || this._control?.isOpen) {
      return; // registered, or a register is waiting for its hello
    }
    const info = await kernel.info;
    if (kernel !== this._kernel || this._isDisposed) {
      return;
    }
    if (info.language_info.name !== 'python') {
      this._setStatus('unsupported');
      return;
    }
    const version = await this._listen(kernel);
    if (kernel !== this._kernel || this._isDisposed || version === null) {
      // No nbagent in the kernel's environment (or one too old to listen: it
      // says hello itself when loaded, and _onData reports the mismatch).
      return;
    }
    if (version !== PROTOCOL_VERSION) {
      this._setIncompatible(version, null);
      return;
    }
    const subshellId = await this._ensureSubshell(kernel);
    if (kernel !== this._kernel || this._isDisposed) {
      return;
    }
    // A fresh control comm for each handshake (the kernel keys clients by client_id).
    this._control?.close();
    const control = new ControlChannel(kernel, subshellId);
    this._control = control;
    control.open(registerMsg(this.clientId, this.path, subshellId));
  }

  /** `listen()` in the kernel: its protocol version, or null without nbagent. */
  private async _listen(kernel: Kernel.IKernelConnection): Promise<number | null> {
    const reply = await kernel.requestExecute({
      code: '',
      silent: true,
      store_history: false,
      allow_stdin: false,
      user_expressions: { nbagent: LISTEN_EXPRESSION }
    }).done;
    const content = reply.content;
    if (content.status !== 'ok') {
      return null;
    }
    const result = content.user_expressions?.nbagent as
      { status?: string; data?: { [mime: string]: unknown } } | undefined;
    const text = result?.status === 'ok' ? result.data?.['text/plain'] : undefined;
    const version = typeof text === 'string' ? Number(text) : NaN;
    return Number.isInteger(version) && version > 0 ? version : null;
  }

  private _onIOPub(kernel: Kernel.IKernelConnection, msg: KernelMessage.IIOPubMessage): void {
    if (kernel !== this._kernel) {
      return;
    }
    if (KernelMessage.isCommOpenMsg(msg)) {
      if (msg.content.target_name === EVENTS_TARGET) {
        // The newest events comm wins: the kernel reopens it if a frontend closed it.
        this._eventsCommId = msg.content.comm_id;
        this._onData(msg.content.data);
      }
    } else if (KernelMessage.isCommMsgMsg(msg)) {
      const data = msg.content.data;
      if (msg.content.comm_id === this._eventsCommId) {
        this._onData(data);
      } else if (data.type === 'hello' && data.client_id === this.clientId) {
        // The answer to our register on an events comm another client opened.
        this._eventsCommId = msg.content.comm_id;
        this._onData(data);
      }
    } else if (KernelMessage.isCommCloseMsg(msg)) {
      if (msg.content.comm_id === this._eventsCommId) {
        // The kernel closed the transport (closed its bridge, or announced to a page
        // of protocol v2, which reopens it): register again when the kernel is idle.
        this._eventsCommId = null;
        this._control?.close();
        this._control = null;
        this._needsHandshake = true;
        this._setStatus('waiting');
      }
    } else if (
      this._status === 'waiting' &&
      KernelMessage.isExecuteInputMsg(msg) &&
      msg.content.code.includes('nbagent')
    ) {
      // nbagent may have been installed or loaded since the last handshake found
      // none: try again when the kernel is idle.
      this._needsHandshake = true;
    }
  }

  private _onData(data: unknown): void {
    const parsed = parseKernelMsg(data);
    if (parsed.kind === 'incompatible') {
      // Say so instead of waiting forever for a hello this page can read.
      this._setIncompatible(parsed.version, parsed.nbagent);
      return;
    }
    if (parsed.kind !== 'message') {
      return;
    }
    const msg = parsed.msg;
    switch (msg.type) {
      case 'hello':
        // The answer to our register (other clients' hellos say nothing about us).
        if (msg.client_id === this.clientId && this._control?.isOpen) {
          this._setStatus('connected');
        }
        break;
      case 'agent_event':
        this._agentEvent.emit(msg);
        break;
      case 'state':
        this._stateMessage.emit(msg);
        break;
      case 'request':
        if (msg.client_id === this.clientId) {
          void this._onRequest(msg);
        }
        break;
      case 'history':
        if (msg.client_id === this.clientId) {
          this._historyMessage.emit(msg);
        }
        break;
      case 'changes':
        this._changesMessage.emit(msg);
        break;
      case 'mcp_status':
        this._mcpStatusMessage.emit(msg);
        break;
      case 'revert_result':
        if (msg.client_id === this.clientId) {
          this._revertResult.emit(msg);
        }
        break;
    }
  }

  private _setIncompatible(kernelVersion: unknown, nbagent: string | null): void {
    this._control?.close();
    this._control = null;
    this._incompatibility = { kernelVersion, nbagent, pageVersion: PROTOCOL_VERSION };
    console.warn('nbagent: the kernel speaks another protocol version', this._incompatibility);
    this._setStatus('incompatible');
  }

  private _ensureSubshell(kernel: Kernel.IKernelConnection): Promise<string | null> {
    if (!this._subshell) {
      this._subshell = (async () => {
        await kernel.info;
        if (!kernel.supportsSubshells) {
          return null;
        }
        try {
          const reply = await kernel.requestCreateSubshell({}).done;
          const id = reply.content.subshell_id;
          return typeof id === 'string' ? id : null;
        } catch (err) {
          console.warn('nbagent: could not create a subshell; using the main shell', err);
          return null;
        }
      })();
    }
    return this._subshell;
  }

  private _onPathChanged(): void {
    this.sendControl(pathChangedMsg(this.clientId, this.path));
  }

  /* ------------------------------ requests ------------------------------ */

  private async _onRequest(req: RequestMsg): Promise<void> {
    let reply: ControlMsg;
    try {
      await this.context.ready;
      const model = this.context.model;
      const result = await applyOp(model.sharedModel, this.path, req.op, req.args);
      reply = replyOk(req.id, result);
    } catch (err) {
      reply =
        err instanceof OpError
          ? replyError(req.id, err.code, err.message)
          : replyError(req.id, 'internal', String(err));
    }
    if (!this.sendControl(reply)) {
      console.warn(`nbagent: no control comm to answer request ${req.id}`);
    }
  }

  /* ------------------------------ helpers ------------------------------ */

  private async _execute(
    kernel: Kernel.IKernelConnection,
    code: string,
    hooks: ExecuteHooks
  ): Promise<ExecuteOutcome> {
    try {
      // allow_stdin false: nobody shows an input box for a silent execution, so
      // input() must fail fast; approvals come over the control comm instead.
      const future = kernel.requestExecute({
        code,
        silent: true,
        store_history: false,
        allow_stdin: false
      });
      future.onIOPub = msg => {
        if (KernelMessage.isStatusMsg(msg) && msg.content.execution_state === 'busy') {
          hooks.onStarted?.();
        } else if (KernelMessage.isErrorMsg(msg)) {
          hooks.onError?.(`${msg.content.ename}: ${msg.content.evalue}`);
        } else if (KernelMessage.isStreamMsg(msg) && msg.content.name === 'stderr') {
          hooks.onError?.(msg.content.text);
        }
      };
      const reply = await future.done;
      const content = reply.content;
      if (content.status === 'ok') {
        return { ok: true };
      }
      if (content.status === 'error') {
        return { ok: false, error: `${content.ename}: ${content.evalue}` };
      }
      return { ok: false, error: 'The request was aborted.' };
    } catch (err) {
      return { ok: false, error: `The kernel did not run the request (${String(err)}).` };
    }
  }

  private _setStatus(status: BridgeStatus): void {
    if (status !== this._status) {
      this._status = status;
      this._statusChanged.emit(status);
    }
  }

  private _isDisposed = false;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _status: BridgeStatus = 'no-kernel';
  private _control: ControlChannel | null = null;
  private _eventsCommId: string | null = null;
  private _subshell: Promise<string | null> | null = null;
  private _handshake: Promise<void> = Promise.resolve();
  private _needsHandshake = false;
  private _incompatibility: Incompatibility | null = null;
  private _disposed = new Signal<this, void>(this);
  private _statusChanged = new Signal<this, BridgeStatus>(this);
  private _agentEvent = new Signal<this, AgentEventMsg>(this);
  private _stateMessage = new Signal<this, StateMsg>(this);
  private _historyMessage = new Signal<this, HistoryMsg>(this);
  private _changesMessage = new Signal<this, ChangesMsg>(this);
  private _mcpStatusMessage = new Signal<this, McpStatusMsg>(this);
  private _revertResult = new Signal<this, RevertResultMsg>(this);
}
