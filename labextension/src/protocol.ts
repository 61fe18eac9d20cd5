/**
 * The nbagent kernel <-> frontend protocol (docs/protocol.md).
 *
 * The message types come from the one definition of the protocol,
 * src/nbagent/transport/protocol.schema.json, through the generated protocolTypes.ts;
 * this module adds the constants, the builders of the messages this frontend sends,
 * and the check of what the kernel sends. It has no runtime imports, so the contract
 * test runs it in plain Node and validates the builders' output against the schema.
 *
 * The frontend speaks first: it opens the control comm (`nbagent.control`) on its own
 * subshell with a register, and only sends on it; the kernel answers with a hello,
 * opening the events comm (`nbagent.events`) if no other client has, and only sends
 * on that. Every message carries `v` (PROTOCOL_VERSION) and a `type`.
 */

import type {
  ApprovalMsg,
  ControlTarget,
  Decision,
  ErrorCode,
  EventsTarget,
  HelloMsg,
  KernelMsg,
  PathChangedMsg,
  RegisterMsg,
  ReplyError,
  ReplyOk,
  ReplyResult,
  RevertMsg,
  StopMsg,
  Version
} from './protocolTypes';

export type * from './protocolTypes';

/** Typed as the schema's constants: tsc fails here if the schema changes them. */
export const PROTOCOL_VERSION: Version = 5;
export const EVENTS_TARGET: EventsTarget = 'nbagent.events';
export const CONTROL_TARGET: ControlTarget = 'nbagent.control';

/**
 * The frontend's first step: a Python expression evaluated silently in the kernel
 * (`user_expressions` of an empty execute: no execution count, no hooks). It lets
 * frontends register without loading the extension, and gives the kernel's
 * protocol version. Fails quietly where nbagent is not installed.
 */
export const LISTEN_EXPRESSION =
  "__import__('nbagent.jupyter.bridge', fromlist=['listen']).listen()";

/* -------------------------- frontend -> kernel -------------------------- */

export function registerMsg(
  clientId: string,
  path: string,
  subshellId: string | null
): RegisterMsg {
  return {
    v: PROTOCOL_VERSION,
    type: 'register',
    client_id: clientId,
    path,
    subshell_id: subshellId
  };
}

export function pathChangedMsg(clientId: string, path: string): PathChangedMsg {
  return { v: PROTOCOL_VERSION, type: 'path_changed', client_id: clientId, path };
}

export function replyOk(id: string, result: ReplyResult): ReplyOk {
  return { v: PROTOCOL_VERSION, type: 'reply', id, ok: true, result };
}

export function replyError(id: string, error: ErrorCode, message: string): ReplyError {
  return { v: PROTOCOL_VERSION, type: 'reply', id, ok: false, error, message };
}

export function approvalMsg(callId: string, decision: Decision): ApprovalMsg {
  return { v: PROTOCOL_VERSION, type: 'approval', call_id: callId, decision };
}

export function stopMsg(): StopMsg {
  return { v: PROTOCOL_VERSION, type: 'stop' };
}

/** Undo what turn `turn` changed (and the turns after it). */
export function revertMsg(turn: number): RevertMsg {
  return { v: PROTOCOL_VERSION, type: 'revert', turn };
}

/* -------------------------- kernel -> frontend -------------------------- */

function isObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What the frontend makes of the data of an events-comm message. */
export type KernelData =
  | { kind: 'message'; msg: KernelMsg }
  /** A hello of another protocol version: nbagent in the kernel is older or newer. */
  | { kind: 'incompatible'; version: unknown; nbagent: string }
  | { kind: 'ignored' };

/**
 * Narrow comm data to a kernel message. Only the envelope is checked (the kernel's
 * side is validated against the schema by its tests); unknown types are ignored.
 */
export function parseKernelMsg(data: unknown): KernelData {
  if (!isObject(data) || typeof data.type !== 'string') {
    return { kind: 'ignored' };
  }
  if (data.v !== PROTOCOL_VERSION) {
    return data.type === 'hello'
      ? {
          kind: 'incompatible',
          version: data.v,
          nbagent: typeof data.nbagent === 'string' ? data.nbagent : 'unknown'
        }
      : { kind: 'ignored' };
  }
  switch (data.type) {
    case 'hello':
      return { kind: 'message', msg: data as HelloMsg };
    case 'agent_event':
      return typeof data.turn_id === 'string' &&
        isObject(data.event) &&
        typeof data.event.type === 'string'
        ? { kind: 'message', msg: data as KernelMsg }
        : { kind: 'ignored' };
    case 'state':
      return typeof data.busy === 'boolean'
        ? { kind: 'message', msg: data as KernelMsg }
        : { kind: 'ignored' };
    case 'request':
      return typeof data.id === 'string' &&
        typeof data.op === 'string' &&
        typeof data.client_id === 'string'
        ? {
            kind: 'message',
            msg: { ...data, args: isObject(data.args) ? data.args : {} } as KernelMsg
          }
        : { kind: 'ignored' };
    case 'history':
      return typeof data.client_id === 'string' && Array.isArray(data.entries)
        ? { kind: 'message', msg: data as KernelMsg }
        : { kind: 'ignored' };
    case 'changes':
      return Array.isArray(data.turns)
        ? { kind: 'message', msg: data as KernelMsg }
        : { kind: 'ignored' };
    case 'mcp_status':
      return Array.isArray(data.servers)
        ? { kind: 'message', msg: data as KernelMsg }
        : { kind: 'ignored' };
    case 'revert_result':
      return typeof data.client_id === 'string' &&
        typeof data.turn === 'number' &&
        Array.isArray(data.reports)
        ? { kind: 'message', msg: data as KernelMsg }
        : { kind: 'ignored' };
    default:
      return { kind: 'ignored' };
  }
}
