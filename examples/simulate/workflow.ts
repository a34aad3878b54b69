/**
 * A user's durable workflow, as an application would write it: an order is
 * placed by reserving each item, pricing the order on a worker (`rpc`), waiting
 * out a cooling-off period, waiting for a person to approve it (`ctx.promise`),
 * and charging the card. Every side effect is a leaf `ctx.run` step; the
 * orchestrating function only makes durable calls, so replaying it after a crash
 * changes nothing: it is interruption-transparent. `workflow.test.ts` proves it
 * with `pledge/testing`; `mistakes.ts` holds two functions that are not.
 */
import type { Context, Pledge } from "pledge";

export interface Order {
  id: string;
  items: string[];
}

/** A stand-in for the warehouse and the payment provider: what the steps change. */
export const outside = {
  reserved: new Map<string, string>(),
  charges: new Map<string, number>(),
  reset(): void {
    outside.reserved.clear();
    outside.charges.clear();
  },
};

/** Reserves one item; idempotent by reservation id, as a real warehouse API should be. */
export function reserve(_ctx: Context, orderId: string, item: string): string {
  const reservation = `${orderId}/${item}`;
  outside.reserved.set(reservation, item);
  return reservation;
}

export function price(_ctx: Context, items: string[]): number {
  return items.reduce((sum, item) => sum + 100 * item.length, 0);
}

/** Charges the card; the order id is the idempotency key, so a re-run charges once. */
export async function charge(_ctx: Context, orderId: string, amount: number): Promise<string> {
  await Promise.resolve(); // a real client would await the provider here
  outside.charges.set(orderId, amount);
  return `receipt-${orderId}-${amount}`;
}

export async function placeOrder(ctx: Context, order: Order) {
  const reservations: string[] = [];
  for (const item of order.items) reservations.push(await ctx.run(reserve, order.id, item));
  const total = await ctx.rpc<number>("price", order.items);
  await ctx.sleep(60 * 60 * 1000); // an hour to change one's mind: simulated time, not real
  const approval = await ctx.promise<string>({ tags: { approval: order.id } });
  if (approval !== "approved") return { order: order.id, status: "declined", reservations };
  const receipt = await ctx.run(charge, order.id, total);
  return { order: order.id, status: "charged", reservations, total, receipt };
}

export function registerOrders(pledge: Pledge): void {
  pledge.register("reserve", reserve);
  pledge.register("price", price);
  pledge.register("charge", charge);
  pledge.register("placeOrder", placeOrder);
}
