/**
 * The control comm: opened by the frontend, sent on only by the frontend, every
 * message pinned to one subshell. JupyterLab's `createComm` would choose the subshell
 * itself from its `commsOverSubshells` setting (possibly none), so comm_open,
 * comm_msg and comm_close go out as raw shell messages carrying `subshell_id`.
 */

import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject, UUID } from '@lumino/coreutils';

import { CONTROL_TARGET, ControlMsg } from './protocol';

/** Sends on a frontend-opened comm as raw shell messages pinned to one subshell. */
export class ControlChannel {
  readonly commId = UUID.uuid4();
  private _closed = false;

  constructor(
    private readonly _kernel: Kernel.IKernelConnection,
    readonly subshellId: string | null
  ) {}

  get isOpen(): boolean {
    return !this._closed && !this._kernel.isDisposed;
  }

  open(data: ControlMsg): void {
    this._send('comm_open', {
      comm_id: this.commId,
      target_name: CONTROL_TARGET,
      data: asJSON(data)
    });
  }

  send(data: ControlMsg): boolean {
    if (!this.isOpen) {
      return false;
    }
    return this._send('comm_msg', { comm_id: this.commId, data: asJSON(data) });
  }

  close(): void {
    if (this.isOpen) {
      this._send('comm_close', { comm_id: this.commId, data: {} });
    }
    this._closed = true;
  }

  /** Forget the comm without telling the kernel (it restarted or died). */
  abandon(): void {
    this._closed = true;
  }

  private _send(
    msgType: 'comm_open' | 'comm_msg' | 'comm_close',
    content: { comm_id: string; target_name?: string; data: JSONObject }
  ): boolean {
    const kernel = this._kernel;
    if (kernel.isDisposed || kernel.status === 'dead') {
      return false;
    }
    const common = {
      channel: 'shell' as const,
      session: kernel.clientId,
      username: kernel.username,
      subshellId: this.subshellId
    };
    try {
      if (msgType === 'comm_open') {
        kernel.sendShellMessage(
          KernelMessage.createMessage<KernelMessage.ICommOpenMsg<'shell'>>({
            ...common,
            msgType,
            content: {
              comm_id: content.comm_id,
              target_name: content.target_name ?? CONTROL_TARGET,
              data: content.data
            }
          }),
          false,
          true
        );
      } else if (msgType === 'comm_msg') {
        kernel.sendShellMessage(
          KernelMessage.createMessage<KernelMessage.ICommMsgMsg<'shell'>>({
            ...common,
            msgType,
            content: { comm_id: content.comm_id, data: content.data }
          }),
          false,
          true
        );
      } else {
        kernel.sendShellMessage(
          KernelMessage.createMessage<KernelMessage.ICommCloseMsg<'shell'>>({
            ...common,
            msgType,
            content: { comm_id: content.comm_id, data: content.data }
          }),
          false,
          true
        );
      }
      return true;
    } catch (err) {
      console.warn('nbagent: could not send on the control comm', err);
      return false;
    }
  }
}

/** Protocol messages are plain JSON by construction; this only satisfies the type. */
function asJSON(data: ControlMsg): JSONObject {
  return data as unknown as JSONObject;
}
