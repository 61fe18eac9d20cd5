/**
 * Review and revert in the chat: what each turn changed (cells, files, variables),
 * newest first, as the kernel's `changes` message lists it, each with its diff and a
 * Revert button. Revert sends `revert` {turn}; the kernel undoes that turn and the
 * turns after it once it is free, then answers with a `revert_result` (shown in the
 * conversation by the chat) and a new `changes` list.
 */

import type { RevertResultMsg, TurnChanges } from './protocol';
import { el } from './render';

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** "2 cells · 1 file" */
export function countsText(turn: TurnChanges): string {
  const parts: string[] = [];
  if (turn.cells) {
    parts.push(plural(turn.cells, 'cell', 'cells'));
  }
  if (turn.files) {
    parts.push(plural(turn.files, 'file', 'files'));
  }
  if (turn.variables) {
    parts.push(plural(turn.variables, 'variable', 'variables'));
  }
  return parts.join(' · ') || 'no changes';
}

export class ChangesView {
  /** Collapsed until opened; hidden while no turn changed anything. */
  readonly node = el('details', 'jp-nbagent-changes');

  /**
   * `revert(turn)` sends the request; false if it could not be sent (not connected).
   */
  constructor(private readonly _revert: (turn: number) => boolean) {
    this.node.appendChild(this._summary);
    this.node.appendChild(this._list);
    this.node.hidden = true;
  }

  /** The kernel's list replaces the one shown. */
  update(turns: ReadonlyArray<TurnChanges>): void {
    this._turns = [...turns];
    this._reverting = null;
    this._render();
  }

  /** No Revert while a turn runs: the kernel would refuse it anyway. */
  setBusy(busy: boolean): void {
    this._busy = busy;
    this._syncButtons();
  }

  /** The kernel answered a revert (a `changes` list follows). */
  reverted(_msg: RevertResultMsg): void {
    this._reverting = null;
    this._syncButtons();
  }

  private _render(): void {
    const open = this._turns.filter(t => !t.undone).length;
    this.node.hidden = this._turns.length === 0;
    this._summary.textContent = `Changes by nbagent: ${plural(open, 'turn', 'turns')} to review`;
    this._list.replaceChildren(...this._turns.map(turn => this._item(turn)));
    this._syncButtons();
  }

  private _item(turn: TurnChanges): HTMLElement {
    const item = el('div', 'jp-nbagent-change');
    item.dataset.turn = String(turn.turn);
    item.classList.toggle('jp-mod-undone', turn.undone);
    const head = el('div', 'jp-nbagent-change-head');
    const title = el('span', 'jp-nbagent-change-title', `Turn ${turn.turn}`);
    if (turn.label) {
      title.appendChild(el('span', 'jp-nbagent-change-label', `: ${turn.label}`));
    }
    title.title = turn.label;
    head.appendChild(title);
    head.appendChild(el('span', 'jp-nbagent-change-counts', countsText(turn)));
    const button = el(
      'button',
      'jp-Button jp-nbagent-button jp-nbagent-revert',
      turn.undone ? 'Reverted' : 'Revert'
    );
    button.type = 'button';
    button.title = 'Undo what this turn changed (and the turns after it)';
    button.dataset.turn = String(turn.turn);
    button.addEventListener('click', () => this._onRevert(turn.turn));
    head.appendChild(button);
    item.appendChild(head);
    if (turn.diff) {
      const diff = el('details', 'jp-nbagent-change-diff');
      diff.appendChild(el('summary', 'jp-nbagent-change-diff-summary', 'Diff'));
      diff.appendChild(el('pre', 'jp-nbagent-change-diff-body', turn.diff));
      item.appendChild(diff);
    }
    return item;
  }

  private _onRevert(turn: number): void {
    if (this._busy || this._reverting !== null) {
      return;
    }
    if (!this._revert(turn)) {
      return; // the chat says it is not connected
    }
    this._reverting = turn;
    this._syncButtons();
  }

  private _syncButtons(): void {
    const undone = new Set(this._turns.filter(t => t.undone).map(t => t.turn));
    this._list.querySelectorAll<HTMLButtonElement>('.jp-nbagent-revert').forEach(button => {
      const turn = Number(button.dataset.turn);
      // Reverting turn N also reverts the later turns it lists above it.
      const pending = this._reverting !== null && turn >= this._reverting;
      button.disabled = undone.has(turn) || this._busy || this._reverting !== null;
      button.textContent = undone.has(turn) ? 'Reverted' : pending ? 'Reverting…' : 'Revert';
    });
  }

  private _summary = el('summary', 'jp-nbagent-changes-summary');
  private _list = el('div', 'jp-nbagent-changes-list');
  private _turns: TurnChanges[] = [];
  private _busy = false;
  private _reverting: number | null = null;
}

/** The answer to a revert, for the conversation: what came back and what did not. */
export function revertReport(msg: RevertResultMsg): HTMLElement {
  const box = el('div', `jp-nbagent-revert-report ${msg.ok ? 'jp-mod-ok' : 'jp-mod-warning'}`);
  box.appendChild(el('div', 'jp-nbagent-revert-message', msg.message));
  for (const report of msg.reports) {
    for (const line of report.restored) {
      box.appendChild(el('div', 'jp-nbagent-revert-restored', `Restored: ${line}`));
    }
    for (const line of report.not_restored) {
      box.appendChild(el('div', 'jp-nbagent-revert-not-restored', `Not restored: ${line}`));
    }
  }
  return box;
}
